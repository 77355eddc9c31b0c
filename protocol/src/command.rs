//! One SMTP command line → [`Command`].

use std::fmt;

use crate::address::{Address, AddressError};
use crate::params::{MailParams, RcptParams};
use crate::reply::{EnhancedCode, Reply};

/// A parsed SMTP command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `HELO domain`.
    Helo {
        /// The client's name for itself, as given.
        host: String,
    },
    /// `EHLO domain`.
    Ehlo {
        /// The client's name for itself, as given.
        host: String,
    },
    /// `MAIL FROM:<reverse-path> [params]`.
    Mail {
        /// The sender; `None` is the null reverse path `<>`.
        from: Option<Address>,
        /// ESMTP parameters.
        params: MailParams,
    },
    /// `RCPT TO:<forward-path> [params]`.
    Rcpt {
        /// The recipient.
        to: Address,
        /// ESMTP parameters.
        params: RcptParams,
    },
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]` (RFC 3030); `size` octets of content follow.
    Bdat {
        /// Octets in this chunk.
        size: u64,
        /// This is the last chunk.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP [text]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY string`.
    Vrfy {
        /// The argument, as given.
        arg: String,
    },
    /// `HELP [topic]`.
    Help,
    /// `ETRN [@|#]node` (RFC 1985). The parser keeps the argument text as
    /// given; the session checks it with [`etrn_site`](crate::etrn_site)
    /// and passes on the bare site (original case, without `@`/`#`), so
    /// layers only ever see a valid host name or address literal.
    Etrn {
        /// The argument: as given when parsed, the bare site in requests.
        node: String,
    },
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth {
        /// The SASL mechanism name, upper-cased.
        mechanism: String,
        /// The initial response, base64 as given.
        initial_response: Option<String>,
    },
}

impl Command {
    /// The verb as it appears in logs and statistics (`mail`, `rcpt`, …),
    /// the way Postfix counts commands on its `disconnect` log line.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Helo { .. } => "helo",
            Command::Ehlo { .. } => "ehlo",
            Command::Mail { .. } => "mail",
            Command::Rcpt { .. } => "rcpt",
            Command::Data => "data",
            Command::Bdat { .. } => "bdat",
            Command::Rset => "rset",
            Command::Noop => "noop",
            Command::Quit => "quit",
            Command::Vrfy { .. } => "vrfy",
            Command::Help => "help",
            Command::Etrn { .. } => "etrn",
            Command::StartTls => "starttls",
            Command::Auth { .. } => "auth",
        }
    }

    /// RFC 2920 §3.1: commands after which a client must wait for the reply
    /// before sending more. Postfix's pipelining check uses this set.
    pub fn must_end_pipeline_group(&self) -> bool {
        matches!(
            self,
            Command::Helo { .. }
                | Command::Ehlo { .. }
                | Command::Data
                | Command::Noop
                | Command::Vrfy { .. }
                | Command::Help
                | Command::Etrn { .. }
                | Command::StartTls
                | Command::Auth { .. }
        )
    }

    /// Parses one command line, without its line ending.
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        if line.contains(&0) {
            return Err(CommandError::BadSyntax);
        }
        let line = std::str::from_utf8(line).map_err(|_| CommandError::BadSyntax)?;
        let line = line.trim_end_matches([' ', '\t']);
        if line.trim().is_empty() {
            return Err(CommandError::BadSyntax);
        }
        let (verb, rest) = match line.find([' ', '\t']) {
            Some(i) => (&line[..i], line[i + 1..].trim_start_matches([' ', '\t'])),
            None => (line, ""),
        };
        let is = |name: &str| verb.eq_ignore_ascii_case(name);
        if is("HELO") || is("EHLO") {
            let ehlo = is("EHLO");
            let mut words = rest.split_ascii_whitespace();
            let host = words.next().ok_or(CommandError::HeloSyntax { ehlo })?;
            // Postfix takes the first word and ignores the rest.
            let host = host.to_owned();
            return Ok(if ehlo {
                Command::Ehlo { host }
            } else {
                Command::Helo { host }
            });
        }
        if is("MAIL") {
            return parse_mail(rest);
        }
        if is("RCPT") {
            return parse_rcpt(rest);
        }
        if is("DATA") {
            return no_args(rest, Command::Data, "DATA");
        }
        if is("BDAT") {
            return parse_bdat(rest);
        }
        if is("RSET") {
            return no_args(rest, Command::Rset, "RSET");
        }
        if is("NOOP") {
            return Ok(Command::Noop);
        }
        if is("QUIT") {
            return Ok(Command::Quit);
        }
        if is("VRFY") {
            if rest.is_empty() {
                return Err(CommandError::Usage("VRFY address"));
            }
            return Ok(Command::Vrfy {
                arg: rest.to_owned(),
            });
        }
        if is("HELP") {
            return Ok(Command::Help);
        }
        if is("ETRN") {
            // Checked by the session with `etrn_site`, after the HELO and
            // transaction checks, as Postfix orders them.
            return Ok(Command::Etrn {
                node: rest.to_owned(),
            });
        }
        if is("STARTTLS") {
            return no_args(rest, Command::StartTls, "STARTTLS");
        }
        if is("AUTH") {
            let mut words = rest.split_ascii_whitespace();
            return match (words.next(), words.next(), words.next()) {
                (Some(mech), initial, None) => Ok(Command::Auth {
                    mechanism: mech.to_ascii_uppercase(),
                    initial_response: initial.map(str::to_owned),
                }),
                _ => Err(CommandError::Usage("AUTH mechanism")),
            };
        }
        Err(CommandError::Unrecognized)
    }
}

fn no_args(rest: &str, cmd: Command, usage: &'static str) -> Result<Command, CommandError> {
    if rest.is_empty() {
        Ok(cmd)
    } else {
        Err(CommandError::Usage(usage))
    }
}

/// Strips the `FROM:`/`TO:` keyword, case-insensitively, allowing the
/// common `FROM: <addr>` spacing.
fn strip_keyword<'a>(rest: &'a str, keyword: &str) -> Option<&'a str> {
    let head = rest.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| rest[keyword.len()..].trim_start_matches([' ', '\t']))
}

/// Splits `<path> params…` (or a bare `path params…`, which Postfix
/// accepts by default) into the path text and the parameter words.
fn split_path(arg: &str) -> Option<(&str, std::str::SplitAsciiWhitespace<'_>)> {
    if let Some(inner) = arg.strip_prefix('<') {
        let end = find_path_end(inner)?;
        let after = &inner[end + 1..];
        if !after.is_empty() && !after.starts_with([' ', '\t']) {
            return None;
        }
        Some((&inner[..end], after.split_ascii_whitespace()))
    } else {
        let end = arg.find([' ', '\t']).unwrap_or(arg.len());
        let path = &arg[..end];
        if path.is_empty() || path.contains(['<', '>']) {
            return None;
        }
        Some((path, arg[end..].split_ascii_whitespace()))
    }
}

/// Position of the closing `>`, skipping quoted strings.
fn find_path_end(inner: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, b) in inner.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b'>' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// Drops an RFC 5321 source route (`@a,@b:user@c`): §3.6.1 says the
/// route SHOULD be ignored.
fn strip_source_route(path: &str) -> &str {
    match path.find(':') {
        Some(colon) if path.starts_with('@') => &path[colon + 1..],
        _ => path,
    }
}

fn parse_mail(rest: &str) -> Result<Command, CommandError> {
    let usage = CommandError::Usage("MAIL FROM:<address>");
    let arg = strip_keyword(rest, "FROM:").ok_or(usage.clone())?;
    let (path, params) = split_path(arg).ok_or(usage)?;
    let params = MailParams::parse(params)?;
    let from = if path.is_empty() {
        None
    } else {
        let addr = Address::parse(strip_source_route(path)).map_err(|e| match e {
            AddressError::TooLong => CommandError::PathTooLong,
            AddressError::Syntax => CommandError::BadSender,
        })?;
        if addr.domain().is_none() {
            return Err(CommandError::BadSender);
        }
        if !addr.is_ascii() && !params.smtputf8 {
            return Err(CommandError::Utf8Undeclared);
        }
        Some(addr)
    };
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(rest: &str) -> Result<Command, CommandError> {
    let usage = CommandError::Usage("RCPT TO:<address>");
    let arg = strip_keyword(rest, "TO:").ok_or(usage.clone())?;
    let (path, params) = split_path(arg).ok_or(usage.clone())?;
    if path.is_empty() {
        return Err(usage);
    }
    let to = Address::parse(strip_source_route(path)).map_err(|e| match e {
        AddressError::TooLong => CommandError::PathTooLong,
        AddressError::Syntax => CommandError::BadRecipient,
    })?;
    let params = RcptParams::parse(params)?;
    Ok(Command::Rcpt { to, params })
}

fn parse_bdat(rest: &str) -> Result<Command, CommandError> {
    let mut words = rest.split_ascii_whitespace();
    let size = words
        .next()
        .filter(|w| w.len() <= 20 && w.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|w| w.parse::<u64>().ok())
        .ok_or(CommandError::BdatSyntax)?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::BdatSyntax),
    };
    if words.next().is_some() {
        return Err(CommandError::BdatSyntax);
    }
    Ok(Command::Bdat { size, last })
}

/// Why a command line was refused. [`CommandError::reply`] gives the
/// answer, in Postfix's words where Postfix has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Not a verb we know.
    Unrecognized,
    /// Empty line, NUL byte, or not UTF-8.
    BadSyntax,
    /// The line is longer than the command line limit.
    LineTooLong,
    /// A verb with the wrong arguments; the text is its usage.
    Usage(&'static str),
    /// `HELO`/`EHLO` without a host name.
    HeloSyntax {
        /// It was `EHLO`.
        ehlo: bool,
    },
    /// `MAIL FROM` with a malformed address.
    BadSender,
    /// `RCPT TO` with a malformed address.
    BadRecipient,
    /// A path over RFC 5321's length limits.
    PathTooLong,
    /// A non-ASCII address without `SMTPUTF8`.
    Utf8Undeclared,
    /// A known ESMTP parameter with a bad value; the text says which.
    BadParameter(&'static str),
    /// An ESMTP parameter we do not support, as given.
    UnsupportedParameter(String),
    /// An ESMTP parameter given twice; the name is upper-case.
    DuplicateParameter(&'static str),
    /// A malformed `BDAT`: the octet stream cannot be resynchronised, so the
    /// session must end (RFC 3030 §3).
    BdatSyntax,
}

impl CommandError {
    /// The SMTP reply for this error.
    pub fn reply(&self) -> Reply {
        let e = EnhancedCode::new;
        match self {
            CommandError::Unrecognized => {
                Reply::enhanced(502, e(5, 5, 2), "Error: command not recognized")
            }
            CommandError::BadSyntax => Reply::enhanced(500, e(5, 5, 2), "Error: bad syntax"),
            CommandError::LineTooLong => Reply::enhanced(500, e(5, 5, 2), "Error: line too long"),
            CommandError::Usage(usage) => {
                Reply::enhanced(501, e(5, 5, 4), format!("Syntax: {usage}"))
            }
            CommandError::HeloSyntax { ehlo } => Reply::new(
                501,
                if *ehlo {
                    "Syntax: EHLO hostname"
                } else {
                    "Syntax: HELO hostname"
                },
            ),
            CommandError::BadSender => {
                Reply::enhanced(501, e(5, 1, 7), "Bad sender address syntax")
            }
            CommandError::BadRecipient => {
                Reply::enhanced(501, e(5, 1, 3), "Bad recipient address syntax")
            }
            CommandError::PathTooLong => Reply::enhanced(501, e(5, 5, 4), "Path too long"),
            CommandError::Utf8Undeclared => Reply::enhanced(
                553,
                e(5, 6, 7),
                "Must declare SMTPUTF8 to send unicode address",
            ),
            CommandError::BadParameter(text) => Reply::enhanced(501, e(5, 5, 4), *text),
            CommandError::UnsupportedParameter(param) => {
                Reply::enhanced(555, e(5, 5, 4), format!("Unsupported option: {param}"))
            }
            CommandError::DuplicateParameter(name) => {
                Reply::enhanced(501, e(5, 5, 4), format!("Duplicate {name} parameter"))
            }
            CommandError::BdatSyntax => {
                Reply::enhanced(521, e(5, 5, 4), "Syntax: BDAT count [LAST]")
            }
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reply())
    }
}

impl std::error::Error for CommandError {}
