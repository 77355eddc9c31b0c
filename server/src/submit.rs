//! Local submission (`sendmail` without `-q`): a message read from a local
//! user's standard input, queued like one received over SMTP.

use std::time::{SystemTime, UNIX_EPOCH};

use towerpost_protocol::Address;
use towerpost_queue::{Envelope, Queue, QueueState, Recipient};

/// What `sendmail` read: options and the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Submission {
    /// `-f sender`; empty for the default (`user@myhostname`); `<>` for null.
    pub sender: Option<String>,
    /// Recipients given as arguments.
    pub recipients: Vec<String>,
    /// `-t`: take recipients from To:, Cc: and Bcc: (and remove Bcc:).
    pub extract: bool,
    /// The message as read (any line ends).
    pub content: Vec<u8>,
}

/// Why a submission was refused.
#[derive(Debug)]
pub enum SubmitError {
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
fn qualify(address: &str, myhostname: &str) -> Result<String, SubmitError> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let full = if address.contains('@') {
        address.to_owned()
    } else {
        format!("{address}@{myhostname}")
    };
    Address::parse(&full)
        .map(|a| a.to_string())
        .map_err(|_| SubmitError::Refused(format!("bad address syntax: {address:?}")))
}

/// `-t`: recipients from To:, Cc:, Bcc: headers; the Bcc: header is removed.
fn extract_recipients(content: &[u8]) -> (Vec<String>, Vec<u8>) {
    let header_end = content
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(content.len(), |i| i + 2);
    let (headers, body) = content.split_at(header_end);
    let text = String::from_utf8_lossy(headers);
    // Unfold: a line starting with white space continues the previous one.
    let mut fields: Vec<String> = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        match (line.starts_with([' ', '\t']), fields.last_mut()) {
            (true, Some(last)) => {
                last.push_str("\r\n");
                last.push_str(line);
            }
            _ => fields.push(line.to_owned()),
        }
    }
    let mut recipients = Vec::new();
    let mut kept = Vec::new();
    for field in fields {
        let (name, value) = field.split_once(':').unwrap_or((&field, ""));
        let name = name.trim().to_ascii_lowercase();
        if matches!(name.as_str(), "to" | "cc" | "bcc") {
            for part in value.replace("\r\n", " ").split(',') {
                let part = part.trim();
                let addr = match (part.rfind('<'), part.rfind('>')) {
                    (Some(a), Some(b)) if a < b => &part[a + 1..b],
                    _ => part,
                };
                if !addr.is_empty() {
                    recipients.push(addr.to_owned());
                }
            }
        }
        if name != "bcc" {
            kept.extend_from_slice(field.as_bytes());
            kept.extend_from_slice(b"\r\n");
        }
    }
    kept.extend_from_slice(body);
    (recipients, kept)
}

/// Queues a local submission from `uid`/`user`; returns the queue id.
pub async fn submit(
    queue: &Queue,
    submission: Submission,
    uid: u32,
    user: &str,
    myhostname: &str,
    size_limit: u64,
) -> Result<towerpost_queue::QueueId, SubmitError> {
    let mut content = to_crlf(&submission.content);
    let mut recipients = submission.recipients.clone();
    if submission.extract {
        let (found, stripped) = extract_recipients(&content);
        recipients.extend(found);
        content = stripped;
    }
    let recipients = recipients
        .iter()
        .map(|r| qualify(r, myhostname))
        .collect::<Result<Vec<_>, _>>()?;
    if recipients.is_empty() {
        return Err(SubmitError::Refused("no recipient addresses found".into()));
    }
    let sender = match submission.sender.as_deref() {
        Some("<>") | Some("") => String::new(),
        Some(s) => qualify(s, myhostname)?,
        None => qualify(user, myhostname)?,
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
        sender: sender.clone(),
        recipients: recipients.into_iter().map(Recipient::new).collect(),
        arrival_time: now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        size: stored.len() as u64,
        state: QueueState::Incoming,
        next_attempt: 0,
        delay_warned: false,
        client: "local".into(),
        helo: String::new(),
        eight_bit_mime: !stored.is_ascii(),
        smtputf8: false,
        ret: None,
        envid: None,
    };
    queue
        .enqueue(id, &envelope, stored)
        .await
        .map_err(SubmitError::Queue)?;
    tracing::info!(target: "towerpost::pickup", "{id}: uid={uid} from=<{sender}>");
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcc_is_used_and_removed() {
        let msg = to_crlf(b"To: A <a@x.test>, b@y.test\nBcc: hidden@z.test\nSubject: s\n\nbody\nTo: not@header.test\n");
        let (rcpts, out) = extract_recipients(&msg);
        assert_eq!(rcpts, ["a@x.test", "b@y.test", "hidden@z.test"]);
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("hidden"), "{out}");
        assert!(out.contains("To: not@header.test"), "body untouched");
    }

    #[test]
    fn bare_names_get_the_host() {
        assert_eq!(qualify("root", "mx.test").unwrap(), "root@mx.test");
        assert_eq!(qualify("<a@b.test>", "mx.test").unwrap(), "a@b.test");
        assert!(qualify("a b", "mx.test").is_err());
    }
}
