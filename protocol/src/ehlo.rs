//! The ESMTP extensions of an EHLO reply (RFC 5321 §4.1.1.1), one type for
//! both sides: the server renders the keywords it offers, the client reads
//! what a next hop offers. Adding an extension is one field here.

use crate::Reply;

/// The service extensions an EHLO reply lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EhloCapabilities {
    /// `PIPELINING` (RFC 2920).
    pub pipelining: bool,
    /// `SIZE` (RFC 1870): `Some(0)` is `SIZE` without a limit, `Some(n)`
    /// is `SIZE n`.
    pub size: Option<u64>,
    /// `VRFY`.
    pub vrfy: bool,
    /// `ETRN` (RFC 1985).
    pub etrn: bool,
    /// `STARTTLS` (RFC 3207).
    pub starttls: bool,
    /// `AUTH` (RFC 4954) with its mechanisms, upper-cased; empty when not
    /// offered.
    pub auth: Vec<String>,
    /// `ENHANCEDSTATUSCODES` (RFC 2034).
    pub enhanced_status_codes: bool,
    /// `8BITMIME` (RFC 6152).
    pub eight_bit_mime: bool,
    /// `DSN` (RFC 3461).
    pub dsn: bool,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `CHUNKING` (RFC 3030).
    pub chunking: bool,
}

impl EhloCapabilities {
    /// What a server's positive EHLO reply offers: every line after the
    /// first names one extension; unknown ones are ignored.
    pub fn from_reply(reply: &Reply) -> Self {
        let mut caps = Self::default();
        for line in reply.lines().skip(1) {
            let mut words = line.split_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "VRFY" => caps.vrfy = true,
                "ETRN" => caps.etrn = true,
                "STARTTLS" => caps.starttls = true,
                "AUTH" => caps.auth = words.map(str::to_ascii_uppercase).collect(),
                "ENHANCEDSTATUSCODES" => caps.enhanced_status_codes = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "DSN" => caps.dsn = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "CHUNKING" => caps.chunking = true,
                _ => {}
            }
        }
        caps
    }

    /// The keyword lines, in the order Postfix's smtpd lists them.
    pub fn keywords(&self) -> Vec<String> {
        let size = self.size.map(|n| match n {
            0 => "SIZE".to_owned(),
            n => format!("SIZE {n}"),
        });
        let auth = (!self.auth.is_empty()).then(|| format!("AUTH {}", self.auth.join(" ")));
        let word = |on: bool, word: &str| on.then(|| word.to_owned());
        [
            word(self.pipelining, "PIPELINING"),
            size,
            word(self.vrfy, "VRFY"),
            word(self.etrn, "ETRN"),
            word(self.starttls, "STARTTLS"),
            auth,
            word(self.enhanced_status_codes, "ENHANCEDSTATUSCODES"),
            word(self.eight_bit_mime, "8BITMIME"),
            word(self.dsn, "DSN"),
            word(self.smtputf8, "SMTPUTF8"),
            word(self.chunking, "CHUNKING"),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The `250` EHLO reply: `hostname`, then the keywords.
    pub fn reply(&self, hostname: &str) -> Reply {
        let mut lines = vec![hostname.to_owned()];
        lines.extend(self.keywords());
        Reply::multiline(250, lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_reads_back_as_what_was_offered() {
        let offered = EhloCapabilities {
            pipelining: true,
            size: Some(10_240_000),
            etrn: true,
            starttls: true,
            auth: vec!["PLAIN".into(), "LOGIN".into()],
            enhanced_status_codes: true,
            eight_bit_mime: true,
            dsn: true,
            smtputf8: true,
            chunking: true,
            ..Default::default()
        };
        let reply = offered.reply("mx.example");
        assert_eq!(
            reply.lines().collect::<Vec<_>>(),
            [
                "mx.example",
                "PIPELINING",
                "SIZE 10240000",
                "ETRN",
                "STARTTLS",
                "AUTH PLAIN LOGIN",
                "ENHANCEDSTATUSCODES",
                "8BITMIME",
                "DSN",
                "SMTPUTF8",
                "CHUNKING",
            ]
        );
        assert_eq!(EhloCapabilities::from_reply(&reply), offered);
    }

    #[test]
    fn keywords_are_read_case_blind_and_unknown_ones_ignored() {
        let reply = Reply::multiline(
            250,
            [
                "peer",
                "size",
                "auth plain cram-md5",
                "X-EXPERIMENT",
                "8bitmime",
            ],
        );
        let caps = EhloCapabilities::from_reply(&reply);
        assert_eq!(caps.size, Some(0));
        assert_eq!(caps.auth, ["PLAIN", "CRAM-MD5"]);
        assert!(caps.eight_bit_mime && !caps.pipelining && !caps.dsn);
    }
}
