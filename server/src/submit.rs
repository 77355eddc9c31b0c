//! Local submission (`sendmail` without `-q`): a message read from a local
//! user's standard input, queued like one received over SMTP.

use std::time::{SystemTime, UNIX_EPOCH};

// mailparse reads the address lists for `-t`: a small crate (no proc
// macros, three small dependencies), edition 2024 with MSRV 1.85, still
// released, that reports a malformed list as an error instead of guessing.
// mail-parser 1.x needs Rust 1.98 and never fails on a bad list.
use mailparse::MailAddr;
use towerpost_protocol::Address;
use towerpost_queue::{Envelope, Queue, Recipient};

/// What `sendmail` read: options and the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Submission {
    /// `-f sender`; empty for the default (`user@myhostname`); `<>` for null.
    pub sender: Option<String>,
    /// Recipients given as arguments.
    pub recipients: Vec<String>,
    /// `-t`: take recipients from To:, Cc: and Bcc: (and remove Bcc:), or
    /// from the Resent- ones when the message has any Resent- header.
    pub extract: bool,
    /// The message as read (any line ends).
    pub content: Vec<u8>,
}

/// Why a submission was refused.
#[derive(Debug)]
pub(crate) enum SubmitError {
    /// A bad address, no recipients, too big: the text says which.
    Refused(String),
    /// The queue failed.
    Queue(towerpost_queue::QueueError),
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubmitError::Refused(text) => f.write_str(text),
            SubmitError::Queue(e) => write!(f, "cannot queue the message: {e}"),
        }
    }
}

/// Canonical CRLF line ends (sendmail input usually has bare LF).
fn to_crlf(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 40 + 2);
    let mut prev = 0u8;
    for &b in content {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    if !out.ends_with(b"\r\n") && !out.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A bare local name becomes `name@myhostname` (Postfix's `$myorigin`).
fn qualify(address: &str, myhostname: &str) -> Result<Address, SubmitError> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let full = if address.contains('@') {
        address.to_owned()
    } else {
        format!("{address}@{myhostname}")
    };
    Address::parse(&full)
        .map_err(|_| SubmitError::Refused(format!("bad address syntax: {address:?}")))
}

/// The header section cut into fields, each with its folded continuation
/// lines and its line ends: put back together they are `headers` exactly.
fn header_fields(headers: &[u8]) -> Vec<&[u8]> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut line = 0;
    while line < headers.len() {
        let next = headers[line..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(headers.len(), |i| line + i + 2);
        // A line starting with white space continues the field before it.
        if line > start && !matches!(headers[line], b' ' | b'\t') {
            fields.push(&headers[start..line]);
            start = line;
        }
        line = next;
    }
    if start < headers.len() {
        fields.push(&headers[start..]);
    }
    fields
}

/// The field name before the colon (`None` for a line without one).
fn field_name(field: &[u8]) -> Option<&[u8]> {
    let colon = field.iter().position(|&b| b == b':')?;
    Some(field[..colon].trim_ascii_end())
}

/// The addresses of one To:/Cc:/Bcc: field (`Name: value`, folded or not),
/// as RFC 5322 reads them: quoted display names, comments, groups (an
/// empty `undisclosed-recipients:;` gives none), angle-addr or addr-spec.
/// Only this value is decoded (UTF-8, else Latin-1, as mailparse does); the
/// field's bytes are not changed.
fn field_addresses(field: &[u8]) -> Result<Vec<String>, mailparse::MailParseError> {
    let (header, _) = mailparse::parse_header(field)?;
    match mailparse::addrparse_header(&header) {
        Ok(list) => {
            let mut found = Vec::new();
            for address in list.into_inner() {
                match address {
                    MailAddr::Single(one) => found.push(one.addr),
                    MailAddr::Group(group) => {
                        found.extend(group.addrs.into_iter().map(|one| one.addr));
                    }
                }
            }
            Ok(found)
        }
        Err(e) => bare_names(header.get_value_raw()).ok_or(e),
    }
}

/// `sendmail -t` has always taken bare local names (`To: root`, `Admin
/// <admin>`) and qualified them like arguments, but RFC 5322, and so
/// mailparse, wants `local@domain`. A value with no quoted string, comment,
/// escape or group, where a comma can only separate addresses, is read here
/// as a plain list of `address` or `phrase <address>` items; anything else
/// is `None`, and mailparse's error stands.
fn bare_names(value: &[u8]) -> Option<Vec<String>> {
    let value = std::str::from_utf8(value).ok()?;
    if value.contains(['"', '(', ')', '\\', ':', ';']) {
        return None;
    }
    let mut found = Vec::new();
    for item in value.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let address = match (item.find('<'), item.find('>')) {
            (None, None) => item,
            (Some(open), Some(close)) if open < close && close == item.len() - 1 => {
                item[open + 1..close].trim()
            }
            _ => return None,
        };
        if address.is_empty() || address.contains(['<', '>']) {
            return None;
        }
        found.push(address.to_owned());
    }
    Some(found)
}

/// `-t`: the recipients of the To:, Cc: and Bcc: headers, or of Resent-To:,
/// Resent-Cc: and Resent-Bcc: when the message has any Resent- header (as
/// Postfix's `sendmail -t` does), qualified with `myhostname`; and the
/// message without its Bcc: and Resent-Bcc: fields. Every other byte is kept
/// as it was, non-UTF-8 header bytes included.
fn extract_recipients(
    content: &[u8],
    myhostname: &str,
) -> Result<(Vec<Address>, Vec<u8>), SubmitError> {
    // The header section ends at the first empty line (a message starting
    // with one has no headers); without one, it is all headers.
    let header_end = if content.starts_with(b"\r\n") {
        0
    } else {
        content
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(content.len(), |i| i + 2)
    };
    let (headers, body) = content.split_at(header_end);
    let fields = header_fields(headers);
    let resent = fields.iter().any(|&field| {
        field_name(field)
            .and_then(|name| name.get(..7))
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"resent-"))
    });
    let wanted: [&str; 3] = if resent {
        ["resent-to", "resent-cc", "resent-bcc"]
    } else {
        ["to", "cc", "bcc"]
    };
    let mut recipients = Vec::new();
    let mut kept = Vec::with_capacity(content.len());
    for field in fields {
        let name = field_name(field).unwrap_or_default();
        if wanted
            .iter()
            .any(|w| name.eq_ignore_ascii_case(w.as_bytes()))
        {
            let shown = String::from_utf8_lossy(name);
            let addresses = field_addresses(field).map_err(|e| {
                SubmitError::Refused(format!("cannot parse the {shown}: header: {e}"))
            })?;
            for address in addresses {
                let address = qualify(&address, myhostname)
                    .map_err(|e| SubmitError::Refused(format!("{e} in the {shown}: header")))?;
                recipients.push(address);
            }
        }
        let blind = name.eq_ignore_ascii_case(b"bcc") || name.eq_ignore_ascii_case(b"resent-bcc");
        if !blind {
            kept.extend_from_slice(field);
        }
    }
    kept.extend_from_slice(body);
    Ok((recipients, kept))
}

/// Queues a local submission from `uid`/`user`; returns the queue id.
pub(crate) async fn submit(
    queue: &Queue,
    submission: Submission,
    uid: u32,
    user: &str,
    myhostname: &str,
    size_limit: u64,
) -> Result<towerpost_queue::QueueId, SubmitError> {
    let mut content = to_crlf(&submission.content);
    let mut recipients = submission
        .recipients
        .iter()
        .map(|r| qualify(r, myhostname))
        .collect::<Result<Vec<_>, _>>()?;
    if submission.extract {
        let (found, stripped) = extract_recipients(&content, myhostname)?;
        recipients.extend(found);
        content = stripped;
    }
    if recipients.is_empty() {
        return Err(SubmitError::Refused("no recipient addresses found".into()));
    }
    let sender = match submission.sender.as_deref() {
        Some("<>") | Some("") => None,
        Some(s) => Some(qualify(s, myhostname)?),
        None => Some(qualify(user, myhostname)?),
    };
    if size_limit > 0 && content.len() as u64 > size_limit {
        return Err(SubmitError::Refused("message file too big".into()));
    }
    let id = queue.new_id();
    let now = SystemTime::now();
    let mut stored = format!(
        "Received: by {myhostname} (towerpost, from userid {uid})\r\n\tid {id}; {}\r\n",
        crate::session::rfc5322_date(now)
    )
    .into_bytes();
    stored.extend_from_slice(&content);
    let envelope = Envelope {
        client: "local".into(),
        eight_bit_mime: !stored.is_ascii(),
        ..Envelope::new(
            sender.clone(),
            recipients.into_iter().map(Recipient::new).collect(),
            now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            stored.len() as u64,
        )
    };
    queue
        .enqueue(id, &envelope, stored)
        .await
        .map_err(SubmitError::Queue)?;
    tracing::info!(target: "towerpost::pickup", "{id}: uid={uid} from=<{}>",
        envelope.sender_text()
    );
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcc_is_used_and_removed() {
        let msg = to_crlf(b"To: A <a@x.test>, b@y.test\nBcc: hidden@z.test\nSubject: s\n\nbody\nTo: not@header.test\n");
        let (rcpts, out) = extract_recipients(&msg, "mx.test").unwrap();
        assert_eq!(rcpts, ["a@x.test", "b@y.test", "hidden@z.test"]);
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("hidden"), "{out}");
        assert!(out.contains("To: not@header.test"), "body untouched");
    }

    /// What `-t` finds in `headers` (given with bare LF line ends).
    fn found(headers: &[u8]) -> Vec<String> {
        let mut msg = headers.to_vec();
        msg.extend_from_slice(b"\nSubject: s\n\nbody\n");
        let (found, _) = extract_recipients(&to_crlf(&msg), "mx.test").unwrap();
        found.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn quoted_display_names_keep_their_commas() {
        assert_eq!(
            found(b"To: \"Doe, John\" <j@x.test>, other@y.test"),
            ["j@x.test", "other@y.test"]
        );
        assert_eq!(
            found(b"Cc: \"Doe, \\\"JD\\\" John\" <j@x.test> (work, home), k@y.test"),
            ["j@x.test", "k@y.test"]
        );
    }

    #[test]
    fn groups_give_their_members() {
        assert_eq!(
            found(b"To: team: a@x.test, b@y.test;"),
            ["a@x.test", "b@y.test"]
        );
        assert!(found(b"To: undisclosed-recipients:;").is_empty());
        assert_eq!(
            found(b"To: undisclosed-recipients:;\nBcc: h@z.test"),
            ["h@z.test"]
        );
    }

    #[test]
    fn comments_are_not_addresses() {
        assert_eq!(found(b"To: j@x.test (Doe, John)"), ["j@x.test"]);
        assert_eq!(
            found(b"To: (Doe, John) j@x.test, k@y.test (Roe, K)"),
            ["j@x.test", "k@y.test"]
        );
    }

    #[test]
    fn folded_headers_are_read_and_kept() {
        let msg =
            to_crlf(b"To: \"Doe,\n John\" <j@x.test>,\n\tother@y.test\nCc: c@z.test\n\nbody\n");
        let (rcpts, out) = extract_recipients(&msg, "mx.test").unwrap();
        assert_eq!(rcpts, ["j@x.test", "other@y.test", "c@z.test"]);
        assert_eq!(out, msg);
    }

    #[test]
    fn header_bytes_are_kept_exactly() {
        let msg = to_crlf(
            b"Subject: caf\xe9\nTo: Caf\xe9 <a@x.test>\nBcc: h@z.test,\n  k@z.test\nX-Long:  one \n\ttwo\n\nbody \xff\n",
        );
        let (rcpts, out) = extract_recipients(&msg, "mx.test").unwrap();
        assert_eq!(rcpts, ["a@x.test", "h@z.test", "k@z.test"]);
        assert_eq!(
            out,
            b"Subject: caf\xe9\r\nTo: Caf\xe9 <a@x.test>\r\nX-Long:  one \r\n\ttwo\r\n\r\nbody \xff\r\n"
        );
    }

    #[test]
    fn resent_headers_take_over() {
        let msg = to_crlf(b"To: old@x.test\nResent-From: me@x.test\nResent-To: new@y.test\nResent-Bcc: hidden@z.test\nBcc: old-hidden@z.test\n\nbody\n");
        let (rcpts, out) = extract_recipients(&msg, "mx.test").unwrap();
        assert_eq!(rcpts, ["new@y.test", "hidden@z.test"]);
        assert_eq!(
            out,
            b"To: old@x.test\r\nResent-From: me@x.test\r\nResent-To: new@y.test\r\n\r\nbody\r\n"
        );
        // Any Resent- header counts, in any case.
        let msg = to_crlf(b"To: old@x.test\nresent-date: now\n\nbody\n");
        assert!(extract_recipients(&msg, "mx.test").unwrap().0.is_empty());
    }

    #[test]
    fn bare_names_in_headers_are_qualified() {
        assert_eq!(found(b"To: root"), ["root@mx.test"]);
        assert_eq!(
            found(b"To: root, Admin <admin>, a@x.test"),
            ["root@mx.test", "admin@mx.test", "a@x.test"]
        );
    }

    #[test]
    fn bad_address_headers_are_refused_by_name() {
        fn refused(msg: &[u8]) -> String {
            extract_recipients(&to_crlf(msg), "mx.test")
                .unwrap_err()
                .to_string()
        }
        let e = refused(b"To: \"Doe, John <j@x.test>\n\nbody\n");
        assert!(e.contains("To:"), "{e}");
        let e = refused(b"Subject: s\nCC: a@x.test b@y.test\n\nbody\n");
        assert!(e.contains("CC:") && e.contains("bad address syntax"), "{e}");
        let e = refused(b"Bcc: \"Doe, John\" <root>\n\nbody\n");
        assert!(e.contains("Bcc:"), "{e}");
    }

    #[test]
    fn a_leading_empty_line_means_no_headers() {
        let msg = to_crlf(b"\nTo: not@header.test\n");
        let (rcpts, out) = extract_recipients(&msg, "mx.test").unwrap();
        assert!(rcpts.is_empty(), "{rcpts:?}");
        assert_eq!(out, msg);
    }

    #[test]
    fn bare_names_get_the_host() {
        assert_eq!(qualify("root", "mx.test").unwrap(), "root@mx.test");
        assert_eq!(qualify("<a@b.test>", "mx.test").unwrap(), "a@b.test");
        assert!(qualify("a b", "mx.test").is_err());
    }
}
