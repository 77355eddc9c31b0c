//! The SASL mechanisms towerpost offers: PLAIN (RFC 4616) and LOGIN.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A supported mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `PLAIN`: one response, `authzid NUL authcid NUL password`.
    Plain,
    /// `LOGIN`: user name, then password, each prompted for.
    Login,
}

impl Mechanism {
    /// The mechanisms, in the order the EHLO reply lists them.
    pub const ALL: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];

    /// By name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// The name, as in EHLO and logs.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// Why a client response could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MechanismError {
    /// Not base64.
    #[error("Invalid base64 data in continued response")]
    Base64,
    /// Base64, but not what the mechanism expects.
    #[error("Invalid authentication data")]
    Malformed,
}

/// Decodes one base64 response (an empty line or `=` is empty).
pub fn decode_base64(line: &str) -> Result<Vec<u8>, MechanismError> {
    let line = line.trim();
    if line.is_empty() || line == "=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(line).map_err(|_| MechanismError::Base64)
}

/// Encodes a challenge.
pub fn encode_base64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// The user name and password of a PLAIN response (RFC 4616). An
/// authorization identity other than the user's own is refused: towerpost
/// has no proxy authorization.
pub fn decode_plain(response: &[u8]) -> Result<(String, String), MechanismError> {
    let mut parts = response.split(|&b| b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(MechanismError::Malformed);
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| MechanismError::Malformed);
    let (authzid, user, password) = (text(authzid)?, text(user)?, text(password)?);
    if user.is_empty() || (!authzid.is_empty() && authzid != user) {
        return Err(MechanismError::Malformed);
    }
    Ok((user, password))
}

/// Decodes a LOGIN field (user name or password).
pub fn decode_login_field(response: &[u8]) -> Result<String, MechanismError> {
    String::from_utf8(response.to_vec()).map_err(|_| MechanismError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_responses_are_split_and_checked() {
        assert_eq!(
            decode_plain(b"\0alice\0s3cret"),
            Ok(("alice".into(), "s3cret".into()))
        );
        assert_eq!(
            decode_plain(b"alice\0alice\0pw"),
            Ok(("alice".into(), "pw".into()))
        );
        assert_eq!(
            decode_plain(b"bob\0alice\0pw"),
            Err(MechanismError::Malformed)
        );
        assert_eq!(decode_plain(b"\0alice"), Err(MechanismError::Malformed));
        assert_eq!(decode_plain(b"\0\0pw"), Err(MechanismError::Malformed));
        assert_eq!(
            decode_base64(&encode_base64(b"\0alice\0pw")).unwrap(),
            b"\0alice\0pw"
        );
        assert_eq!(decode_base64("not base64!"), Err(MechanismError::Base64));
        assert_eq!(Mechanism::from_name("login"), Some(Mechanism::Login));
        assert_eq!(Mechanism::from_name("CRAM-MD5"), None);
    }
}
