//! ESMTP parameters of `MAIL` and `RCPT` (RFC 1870 SIZE, RFC 1652 BODY,
//! RFC 6531 SMTPUTF8, RFC 3461 RET/ENVID/NOTIFY/ORCPT, RFC 4954 AUTH).

use std::fmt;
use std::str::FromStr;

use crate::command::CommandError;

/// RFC 1652 body type declared on `MAIL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Body {
    /// No BODY parameter, or `BODY=7BIT`.
    #[default]
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// RFC 3461 `RET`: how much of the message a failure DSN returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`: the headers only.
    Headers,
}

impl Ret {
    /// The parameter value: `FULL` or `HDRS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Headers => "HDRS",
        }
    }
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Ret {
    type Err = CommandError;

    /// `FULL` or `HDRS`, in any case.
    fn from_str(value: &str) -> Result<Self, CommandError> {
        if value.eq_ignore_ascii_case("FULL") {
            Ok(Ret::Full)
        } else if value.eq_ignore_ascii_case("HDRS") {
            Ok(Ret::Headers)
        } else {
            Err(CommandError::BadParameter("Bad RET parameter syntax"))
        }
    }
}

/// Parameters of `MAIL FROM`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailParams {
    /// `SIZE=`: the client's estimate of the message size in octets.
    pub size: Option<u64>,
    /// `BODY=`.
    pub body: Body,
    /// `SMTPUTF8` was given.
    pub smtputf8: bool,
    /// `RET=`.
    pub ret: Option<Ret>,
    /// `ENVID=`, still xtext-encoded, as it is passed on.
    pub envid: Option<String>,
    /// `AUTH=`, still xtext-encoded (`<>` when the submitter is unknown).
    pub auth: Option<String>,
}

/// RFC 3461 `NOTIFY`: which events the sender wants a DSN for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify {
    /// `SUCCESS` was listed.
    pub success: bool,
    /// `FAILURE` was listed.
    pub failure: bool,
    /// `DELAY` was listed.
    pub delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`: nothing was listed.
    pub fn is_never(&self) -> bool {
        !(self.success || self.failure || self.delay)
    }
}

impl fmt::Display for Notify {
    /// The parameter value as RFC 3461 writes it: `NEVER`, or the events
    /// in the order `SUCCESS,FAILURE,DELAY`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_never() {
            return f.write_str("NEVER");
        }
        let events = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ];
        let mut first = true;
        for (_, name) in events.iter().filter(|(on, _)| *on) {
            if !first {
                f.write_str(",")?;
            }
            f.write_str(name)?;
            first = false;
        }
        Ok(())
    }
}

impl FromStr for Notify {
    type Err = CommandError;

    /// `NEVER`, or a comma-separated list of `SUCCESS`, `FAILURE` and
    /// `DELAY`, in any case.
    fn from_str(value: &str) -> Result<Self, CommandError> {
        parse_notify(value).ok_or(CommandError::BadParameter("Bad NOTIFY parameter syntax"))
    }
}

/// Parameters of `RCPT TO`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RcptParams {
    /// `NOTIFY=`; `None` when absent (Postfix then behaves as `DELAY,FAILURE`).
    pub notify: Option<Notify>,
    /// `ORCPT=`, as `addr-type;xtext`, still encoded.
    pub orcpt: Option<String>,
}

/// RFC 3461 ENVID length limit (decoded octets).
const MAX_ENVID: usize = 100;
/// RFC 3461 ORCPT length limit (the address part, decoded).
const MAX_ORCPT: usize = 500;

/// The parameters a command may carry once; a second one is refused as
/// Postfix does (`501 5.5.4 Duplicate RET parameter`), so that no two
/// layers can read different values of one parameter.
const ONCE: &[&str] = &[
    "SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH", "NOTIFY", "ORCPT",
];

/// Refuses a parameter seen before in the same command.
fn once(key: &str, seen: &mut u32) -> Result<(), CommandError> {
    if let Some(i) = ONCE.iter().position(|k| k.eq_ignore_ascii_case(key)) {
        if *seen & (1 << i) != 0 {
            return Err(CommandError::DuplicateParameter(ONCE[i]));
        }
        *seen |= 1 << i;
    }
    Ok(())
}

impl MailParams {
    pub(crate) fn parse<'a>(params: impl Iterator<Item = &'a str>) -> Result<Self, CommandError> {
        let mut out = MailParams::default();
        let mut seen = 0;
        for param in params {
            let (key, value) = split_param(param);
            once(key, &mut seen)?;
            if key.eq_ignore_ascii_case("SIZE") {
                let v = value.filter(|v| !v.is_empty() && v.len() <= 20);
                let size = v
                    .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse().ok());
                out.size = Some(size.ok_or(CommandError::BadParameter("Bad message size syntax"))?);
            } else if key.eq_ignore_ascii_case("BODY") {
                out.body = match value {
                    Some(v) if v.eq_ignore_ascii_case("7BIT") => Body::SevenBit,
                    Some(v) if v.eq_ignore_ascii_case("8BITMIME") => Body::EightBitMime,
                    Some(_) => return Err(CommandError::UnsupportedParameter(param.to_owned())),
                    None => return Err(CommandError::BadParameter("Bad BODY parameter syntax")),
                };
            } else if key.eq_ignore_ascii_case("SMTPUTF8") {
                if value.is_some() {
                    return Err(CommandError::BadParameter("Bad SMTPUTF8 parameter syntax"));
                }
                out.smtputf8 = true;
            } else if key.eq_ignore_ascii_case("RET") {
                out.ret = Some(match value {
                    Some(v) => v.parse()?,
                    None => return Err(CommandError::BadParameter("Bad RET parameter syntax")),
                });
            } else if key.eq_ignore_ascii_case("ENVID") {
                let v = value
                    .filter(|v| xtext_decoded_len(v).is_some_and(|n| n > 0 && n <= MAX_ENVID))
                    .ok_or(CommandError::BadParameter("Bad ENVID parameter syntax"))?;
                out.envid = Some(v.to_owned());
            } else if key.eq_ignore_ascii_case("AUTH") {
                let v = value
                    .filter(|v| *v == "<>" || xtext_decoded_len(v).is_some_and(|n| n > 0))
                    .ok_or(CommandError::BadParameter("Bad AUTH parameter syntax"))?;
                out.auth = Some(v.to_owned());
            } else {
                return Err(CommandError::UnsupportedParameter(param.to_owned()));
            }
        }
        Ok(out)
    }
}

impl RcptParams {
    pub(crate) fn parse<'a>(params: impl Iterator<Item = &'a str>) -> Result<Self, CommandError> {
        let mut out = RcptParams::default();
        let mut seen = 0;
        for param in params {
            let (key, value) = split_param(param);
            once(key, &mut seen)?;
            if key.eq_ignore_ascii_case("NOTIFY") {
                out.notify = Some(
                    value
                        .ok_or(CommandError::BadParameter("Bad NOTIFY parameter syntax"))?
                        .parse()?,
                );
            } else if key.eq_ignore_ascii_case("ORCPT") {
                let v = value
                    .filter(|v| is_orcpt(v))
                    .ok_or(CommandError::BadParameter("Bad ORCPT parameter syntax"))?;
                out.orcpt = Some(v.to_owned());
            } else {
                return Err(CommandError::UnsupportedParameter(param.to_owned()));
            }
        }
        Ok(out)
    }
}

fn split_param(param: &str) -> (&str, Option<&str>) {
    match param.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (param, None),
    }
}

fn parse_notify(value: &str) -> Option<Notify> {
    if value.eq_ignore_ascii_case("NEVER") {
        return Some(Notify::default());
    }
    let mut n = Notify::default();
    for word in value.split(',') {
        let flag = if word.eq_ignore_ascii_case("SUCCESS") {
            &mut n.success
        } else if word.eq_ignore_ascii_case("FAILURE") {
            &mut n.failure
        } else if word.eq_ignore_ascii_case("DELAY") {
            &mut n.delay
        } else {
            return None;
        };
        *flag = true;
    }
    Some(n)
}

fn is_orcpt(value: &str) -> bool {
    let Some((addr_type, addr)) = value.split_once(';') else {
        return false;
    };
    !addr_type.is_empty()
        && addr_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && xtext_decoded_len(addr).is_some_and(|n| n > 0 && n <= MAX_ORCPT)
}

/// The decoded length of RFC 3461 xtext, or `None` when it is malformed
/// (characters outside `!`..`~`, a literal `+` or `=`, or a bad `+XX`).
fn xtext_decoded_len(value: &str) -> Option<usize> {
    let bytes = value.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex
                    .iter()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
                {
                    return None;
                }
                i += 3;
            }
            b'=' => return None,
            b'!'..=b'~' => i += 1,
            _ => return None,
        }
        n += 1;
    }
    Some(n)
}
