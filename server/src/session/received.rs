//! The `Received:` trace header (RFC 5321 §4.4) prepended to every message.

use std::net::IpAddr;
use std::time::SystemTime;

use towerpost_protocol::MailTime;
use towerpost_queue::QueueId;

use crate::request::{SessionInfo, Transaction};

/// RFC 5321 §4.4 / RFC 3848 protocol names: `SMTP`, `ESMTP`, plus `S` for
/// TLS and `A` for authentication; RFC 6531 `UTF8SMTP…` under SMTPUTF8.
fn protocol(session: &SessionInfo, txn: &Transaction) -> String {
    let base = match (txn.params.smtputf8, session.esmtp) {
        (true, _) => "UTF8SMTP",
        (false, true) => "ESMTP",
        (false, false) => "SMTP",
    };
    let mut p = base.to_owned();
    if session.tls {
        p.push('S');
    }
    if session.auth.is_some() {
        p.push('A');
    }
    p
}

/// Writes the header, folded like Postfix's, with CRLF line ends.
pub(crate) fn write_received(
    out: &mut Vec<u8>,
    session: &SessionInfo,
    txn: &Transaction,
    myhostname: &str,
    id: QueueId,
    now: SystemTime,
) {
    let ip = match session.client.ip() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("IPv6:{v6}"),
    };
    // The HELO name is client text: keep only what is printable and safe
    // inside a header comment.
    let helo: String = session
        .helo
        .as_deref()
        .unwrap_or("unknown")
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '(' | ')' | '\\'))
        .take(255)
        .collect();
    let mut header = format!("Received: from {helo} (unknown [{ip}])\r\n");
    if let Some(tls) = &session.tls_cipher {
        header.push_str(&format!("\t(using {tls})\r\n"));
    }
    header.push_str(&format!(
        "\tby {myhostname} (towerpost) with {proto} id {id}",
        proto = protocol(session, txn),
    ));
    out.extend_from_slice(header.as_bytes());
    if let [(rcpt, _)] = txn.recipients.as_slice() {
        out.extend_from_slice(format!("\r\n\tfor <{rcpt}>").as_bytes());
    }
    out.extend_from_slice(format!("; {}\r\n", rfc5322_date(now)).as_bytes());
}

/// `Sat, 28 Nov 2026 16:03:54 +0000 (UTC)`.
pub(crate) fn rfc5322_date(t: SystemTime) -> String {
    format!("{} (UTC)", MailTime::new(t).rfc5322())
}
