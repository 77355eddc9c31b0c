//! Delivery status notifications (RFC 3464), built without I/O.
//!
//! [`build_dsn`] turns a [`DsnReport`] into the complete RFC 5322 message
//! that a relay sends — from the null sender `<>`, which is the caller's
//! business — to the envelope sender of a message that bounced, expired or is
//! still being retried. The layout follows Postfix's bounce(8):
//!
//! ```text
//! multipart/report; report-type=delivery-status
//! ├── text/plain                 "Notification"      (human-readable)
//! ├── message/delivery-status    "Delivery report"   (RFC 3464 fields)
//! └── message/rfc822             "Undelivered Message"
//!     or text/rfc822-headers     "Undelivered Message Headers"
//! ```
//!
//! Every line ends in CRLF, and no line generated here is longer than 998
//! octets: long values are folded at spaces (and, for a single token longer
//! than a line, split). Values from outside — addresses, remote replies,
//! reasons, ENVID/ORCPT — have control characters (CR and LF included)
//! replaced by spaces, runs of white space collapsed and are capped at
//! [`MAX_VALUE_LEN`] bytes, so they cannot start a header line of their own.
//!
//! Times are written in UTC (`+0000`). If an address or reply contains
//! non-ASCII text (SMTPUTF8), the text part is declared `charset=utf-8`, the
//! report part becomes `message/global-delivery-status` (RFC 6533) with
//! address type `utf-8`, and `Content-Transfer-Encoding: 8bit` is declared;
//! the caller must then send the notification with SMTPUTF8 / 8BITMIME
//! (any 8-bit octet in the result means `BODY=8BITMIME`). A returned
//! original with non-ASCII headers is `message/global` (RFC 6532), or
//! `message/global-headers` when only its header section comes back.
//!
//! Why one long file: the three parts of a report are built from the same
//! folded, sanitised values and must agree byte for byte; about half of it
//! is the tests that pin them.
//!
//! Why not a MIME builder crate (mail-builder): it chooses each part's
//! transfer encoding itself and folds and RFC 2047-encodes headers its own
//! way, while a report must return the original message and headers
//! untouched in a `message/*` part (RFC 2046 §5.2.1 allows no base64 or
//! quoted-printable there, RFC 6532 8bit for `message/global`), be cut at
//! a line boundary under `bounce_size_limit`, and match the layout of
//! Postfix's bounce(8) that tools and the tests below read. What is left
//! to build — three parts, one boundary — is short.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use towerpost_protocol::{MailTime, ascii_domain};

/// Postfix's default `bounce_size_limit`: originals larger than this are
/// returned as headers only.
pub const DEFAULT_BOUNCE_SIZE_LIMIT: usize = 50_000;

/// Longest value (in bytes) taken from outside — an address, a remote reply,
/// a reason — before it is truncated and marked with `...`.
pub const MAX_VALUE_LEN: usize = 2048;

/// What happened to a recipient (RFC 3464 §2.3.3 `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DsnAction {
    /// Delivery failed permanently (or the message expired).
    Failed,
    /// Delivery has not succeeded yet and will be retried.
    Delayed,
    /// Delivered to the final destination.
    Delivered,
    /// Relayed to a system that does not send DSNs.
    Relayed,
}

impl DsnAction {
    /// The `Action:` field value: `failed`, `delayed`, `delivered` or
    /// `relayed`.
    pub fn as_str(self) -> &'static str {
        match self {
            DsnAction::Failed => "failed",
            DsnAction::Delayed => "delayed",
            DsnAction::Delivered => "delivered",
            DsnAction::Relayed => "relayed",
        }
    }
}

/// One recipient's entry in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// The envelope recipient (`Final-Recipient: rfc822; <address>`).
    pub address: String,
    /// RFC 3461 ORCPT as received, e.g. `rfc822;user+2Bx@example.com`
    /// (xtext-encoded); emitted verbatim as `Original-Recipient:`.
    pub orcpt: Option<String>,
    /// What happened to this recipient.
    pub action: DsnAction,
    /// RFC 3463 enhanced status code, e.g. `5.1.1`.
    pub status: String,
    /// The remote host that gave the reply, e.g. `mx.example.com`
    /// (`Remote-MTA: dns; mx.example.com`).
    pub remote_mta: Option<String>,
    /// The remote reply, e.g. `550 5.1.1 User unknown`
    /// (`Diagnostic-Code: smtp; 550 5.1.1 User unknown`).
    pub diagnostic: Option<String>,
    /// Human-readable reason for the text part, e.g. `host
    /// mx.example.com[192.0.2.1] said: 550 5.1.1 User unknown (in reply to
    /// RCPT TO command)`.
    pub reason: String,
}

/// Everything a notification needs.
#[derive(Debug, Clone, Copy)]
pub struct DsnReport<'a> {
    /// This host's name (`myhostname`).
    pub reporting_mta: &'a str,
    /// The original message's queue id.
    pub queue_id: &'a str,
    /// The original envelope sender; the notification goes `To:` it. It must
    /// not be the null sender (RFC 5321 §4.5.5): the caller sends no
    /// notification about a notification.
    pub sender: &'a str,
    /// RFC 3461 ENVID (xtext), emitted verbatim as `Original-Envelope-Id`.
    pub envid: Option<&'a str>,
    /// When the original message arrived.
    pub arrival: SystemTime,
    /// Now; the notification's `Date:` and each `Last-Attempt-Date:`.
    pub now: SystemTime,
    /// The recipients to report on.
    pub recipients: &'a [DsnRecipient],
    /// The original message (header section and body, CRLF).
    pub original: &'a [u8],
    /// RET=HDRS: return only the original's header section.
    pub headers_only: bool,
    /// Postfix `bounce_size_limit` (default [`DEFAULT_BOUNCE_SIZE_LIMIT`]):
    /// a larger original is returned as headers only.
    pub size_limit: usize,
    /// For delayed recipients: when the relay gives up
    /// (`Will-Retry-Until:`).
    pub will_retry_until: Option<SystemTime>,
}

/// The kind of notification, which picks its subject and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DsnKind {
    /// Some recipient failed: a non-delivery report (a bounce).
    Failure,
    /// No recipient failed and some are delayed: a delay warning.
    Delay,
    /// All recipients were delivered or relayed: a success report.
    Success,
}

impl DsnKind {
    /// The notification's `Subject:`.
    pub fn subject(self) -> &'static str {
        match self {
            DsnKind::Failure => "Undelivered Mail Returned to Sender",
            DsnKind::Delay => "Delayed Mail (still being retried)",
            DsnKind::Success => "Successful Mail Delivery Report",
        }
    }
}

impl DsnReport<'_> {
    /// The kind of notification: [`DsnKind::Failure`] if any recipient
    /// failed (or there are no recipients), else [`DsnKind::Delay`] if any is
    /// delayed, else [`DsnKind::Success`].
    pub fn kind(&self) -> DsnKind {
        let any = |a: DsnAction| self.recipients.iter().any(|r| r.action == a);
        if self.recipients.is_empty() || any(DsnAction::Failed) {
            DsnKind::Failure
        } else if any(DsnAction::Delayed) {
            DsnKind::Delay
        } else {
            DsnKind::Success
        }
    }

    /// Whether the original is returned as its header section only (RET=HDRS
    /// or larger than `size_limit`).
    pub fn returns_headers_only(&self) -> bool {
        self.headers_only || self.original.len() > self.size_limit
    }
}

/// Builds the notification message: header section and MIME body, CRLF line
/// endings, ready to be sent from the null sender to `report.sender`.
pub fn build_dsn(report: &DsnReport<'_>) -> Vec<u8> {
    let kind = report.kind();
    let host = clean(report.reporting_mta);
    let domain = domain_token(report.reporting_mta);

    // The three part bodies first: the boundary must not occur in any.
    let text = notification_text(report, kind, &host);
    let status = delivery_status(report, &host);
    let headers_only = report.returns_headers_only();
    let source = if headers_only {
        header_section(report.original)
    } else {
        report.original
    };
    let mut returned = Vec::with_capacity(source.len() + 64);
    push_crlf_normalized(&mut returned, source);

    let text_8bit = !text.is_ascii();
    let status_8bit = !status.is_ascii();
    let returned_8bit = !returned.is_ascii();
    // RFC 6532 §3.7: a returned message whose header section is not ASCII
    // (internationalised headers) is message/global, its header section
    // alone message/global-headers (RFC 6533 §6).
    let returned_global = !header_section(&returned).is_ascii();

    let secs = unix_seconds(report.now);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = nanos_since_epoch(report.now) ^ counter.rotate_left(32);
    let boundary = choose_boundary(
        base_boundary(report.queue_id, secs, &domain),
        seed,
        &[text.as_bytes(), status.as_bytes(), &returned],
    );

    let mut head = String::with_capacity(1024);
    header(&mut head, "Date", &format_date(report.now));
    header(
        &mut head,
        "From",
        &format!("MAILER-DAEMON@{domain} (Mail Delivery System)"),
    );
    header(&mut head, "To", &clean(report.sender));
    header(&mut head, "Subject", kind.subject());
    header(
        &mut head,
        "Message-Id",
        &format!(
            "<{}.{}.{counter}@{domain}>",
            compact_date(secs),
            id_token(report.queue_id)
        ),
    );
    header(&mut head, "Auto-Submitted", "auto-replied");
    header(&mut head, "MIME-Version", "1.0");
    head.push_str("Content-Type: multipart/report; report-type=delivery-status;\r\n");
    head.push_str(&format!("\tboundary=\"{boundary}\"\r\n"));
    if text_8bit || status_8bit || returned_8bit {
        header(&mut head, "Content-Transfer-Encoding", "8bit");
    }
    head.push_str("\r\nThis is a MIME-encapsulated message.\r\n");

    // Part 1: the human-readable notification.
    part_start(&mut head, &boundary);
    header(&mut head, "Content-Description", "Notification");
    if text_8bit {
        header(&mut head, "Content-Type", "text/plain; charset=utf-8");
        header(&mut head, "Content-Transfer-Encoding", "8bit");
    } else {
        header(&mut head, "Content-Type", "text/plain; charset=us-ascii");
    }
    head.push_str("\r\n");
    head.push_str(&text);

    // Part 2: the machine-readable report.
    part_start(&mut head, &boundary);
    header(&mut head, "Content-Description", "Delivery report");
    if status_8bit {
        header(&mut head, "Content-Type", "message/global-delivery-status");
        header(&mut head, "Content-Transfer-Encoding", "8bit");
    } else {
        header(&mut head, "Content-Type", "message/delivery-status");
    }
    head.push_str("\r\n");
    head.push_str(&status);

    // Part 3: the original, or its header section.
    part_start(&mut head, &boundary);
    if headers_only {
        let description = if kind == DsnKind::Success {
            "Message Headers"
        } else {
            "Undelivered Message Headers"
        };
        header(&mut head, "Content-Description", description);
        let kind = if returned_global {
            "message/global-headers"
        } else {
            "text/rfc822-headers"
        };
        header(&mut head, "Content-Type", kind);
    } else {
        header(&mut head, "Content-Description", "Undelivered Message");
        let kind = if returned_global {
            "message/global"
        } else {
            "message/rfc822"
        };
        header(&mut head, "Content-Type", kind);
    }
    header(
        &mut head,
        "Content-Transfer-Encoding",
        if returned_8bit { "8bit" } else { "7bit" },
    );
    head.push_str("\r\n");

    let mut out = head.into_bytes();
    out.reserve(returned.len() + boundary.len() + 8);
    out.extend_from_slice(&returned);
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    out
}

/// Makes Message-Ids unique among notifications built by this process, and
/// seeds boundary variations.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Header lines are folded at a space once they pass this length…
const SOFT_WIDTH: usize = 78;
/// …lines of the human-readable text at this one (as Postfix does)…
const TEXT_WIDTH: usize = 76;
/// …and never exceed this one (RFC 5322 §2.1.1, without the CRLF).
const HARD_WIDTH: usize = 998;
/// RFC 2046 §5.1.1: a boundary is at most 70 characters.
const MAX_BOUNDARY_LEN: usize = 70;

/// Starts a MIME body part: the blank line, `--boundary`.
fn part_start(out: &mut String, boundary: &str) {
    out.push_str("\r\n--");
    out.push_str(boundary);
    out.push_str("\r\n");
}

/// The human-readable part, Postfix's templates with the recipients listed.
fn notification_text(report: &DsnReport<'_>, kind: DsnKind, host: &str) -> String {
    let mut text = String::with_capacity(1024);
    let mut line = |s: &str| push_folded(&mut text, s, 1, Fold::Text);
    line(&format!("This is the mail system at host {host}."));
    line("");
    match kind {
        DsnKind::Failure => {
            line("I'm sorry to have to inform you that your message could not");
            line("be delivered to one or more recipients. It's attached below.");
        }
        DsnKind::Delay => {
            line("####################################################################");
            line("# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #");
            line("####################################################################");
            line("");
            let waited = unix_seconds(report.now).saturating_sub(unix_seconds(report.arrival));
            let waited = if waited >= 3600 {
                format!("{} hour(s)", waited / 3600)
            } else {
                format!("{} minute(s)", waited.max(0) / 60)
            };
            line(&format!(
                "Your message could not be delivered for {waited}."
            ));
            match report.will_retry_until {
                Some(until) => {
                    line("It has not been delivered yet and will be retried until");
                    line(&format!("{}.", format_date(until)));
                }
                None => line("It has not been delivered yet and will be retried until it expires."),
            }
        }
        DsnKind::Success => {
            line("Your message was successfully delivered to the destination(s)");
            line("listed below. If the message was delivered to mailbox you will");
            line("receive no further notifications. Otherwise you may still receive");
            line("notifications of mail delivery errors from other systems.");
        }
    }
    line("");
    if kind != DsnKind::Success {
        line("For further assistance, please send mail to postmaster.");
        line("");
        line("If you do so, please include this problem report. You can");
        line("delete your own text from the attached returned message.");
        line("");
    }
    line("                   The mail system");
    for rcpt in report.recipients {
        let mut reason = clean(&rcpt.reason);
        if reason.is_empty() {
            reason = format!("{} (status {})", rcpt.action.as_str(), clean(&rcpt.status));
        }
        line("");
        line(&format!("<{}>: {reason}", clean(&rcpt.address)));
    }
    text
}

/// The `message/delivery-status` content (RFC 3464 §2.1).
fn delivery_status(report: &DsnReport<'_>, host: &str) -> String {
    let mut out = String::with_capacity(512);
    header(&mut out, "Reporting-MTA", &format!("dns; {host}"));
    header(&mut out, "X-Postfix-Queue-ID", &clean(report.queue_id));
    header(&mut out, "X-Postfix-Sender", &typed_address(report.sender));
    if let Some(envid) = report.envid.map(clean).filter(|e| !e.is_empty()) {
        header(&mut out, "Original-Envelope-Id", &envid);
    }
    header(&mut out, "Arrival-Date", &format_date(report.arrival));
    let now = format_date(report.now);
    for rcpt in report.recipients {
        out.push_str("\r\n");
        header(&mut out, "Final-Recipient", &typed_address(&rcpt.address));
        if let Some(orcpt) = nonempty(rcpt.orcpt.as_deref()) {
            if orcpt.contains(';') {
                header(&mut out, "Original-Recipient", &orcpt);
            } else {
                header(&mut out, "Original-Recipient", &format!("rfc822;{orcpt}"));
            }
        }
        header(&mut out, "Action", rcpt.action.as_str());
        header(&mut out, "Status", &clean(&rcpt.status));
        if let Some(mta) = nonempty(rcpt.remote_mta.as_deref()) {
            header(&mut out, "Remote-MTA", &format!("dns; {mta}"));
        }
        if let Some(diag) = nonempty(rcpt.diagnostic.as_deref()) {
            header(&mut out, "Diagnostic-Code", &format!("smtp; {diag}"));
        }
        if matches!(rcpt.action, DsnAction::Failed | DsnAction::Delayed) {
            header(&mut out, "Last-Attempt-Date", &now);
        }
        if rcpt.action == DsnAction::Delayed
            && let Some(until) = report.will_retry_until
        {
            header(&mut out, "Will-Retry-Until", &format_date(until));
        }
    }
    out
}

/// `rfc822; address`, or `utf-8; address` for a non-ASCII address
/// (RFC 6533 §3).
fn typed_address(address: &str) -> String {
    let address = clean(address);
    let kind = if address.is_ascii() {
        "rfc822"
    } else {
        "utf-8"
    };
    format!("{kind}; {address}")
}

/// A cleaned optional value, `None` if absent or empty.
fn nonempty(value: Option<&str>) -> Option<String> {
    value.map(clean).filter(|v| !v.is_empty())
}

/// Makes an outside value safe for one header line: control characters
/// (CR, LF, TAB, NUL, DEL, C1) become spaces, runs of white space collapse
/// to one space, the ends are trimmed and the length is capped at
/// [`MAX_VALUE_LEN`].
fn clean(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(MAX_VALUE_LEN + 3));
    let mut pending_space = false;
    for c in value.chars() {
        if c.is_control() || c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        let extra = usize::from(pending_space) + c.len_utf8();
        if out.len() + extra > MAX_VALUE_LEN {
            out.push_str("...");
            return out;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    out
}

/// How a long line is folded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fold {
    /// RFC 5322 folding: a CRLF is inserted before a space, so unfolding
    /// restores the value (except where an over-long token had to be split).
    Header,
    /// Postfix-style text: the line breaks at a space, continuation lines are
    /// indented by four spaces.
    Text,
}

/// Appends `Name: value` folded as a header field.
fn header(out: &mut String, name: &str, value: &str) {
    let line = format!("{name}: {value}");
    push_folded(out, &line, name.len() + 2, Fold::Header);
}

/// Appends `line` (no CR or LF, single spaces) as CRLF-terminated lines of
/// at most [`HARD_WIDTH`] octets, breaking at spaces past [`SOFT_WIDTH`]
/// ([`TEXT_WIDTH`] for text).
/// No break is taken at a byte index below `min_break`.
fn push_folded(out: &mut String, line: &str, min_break: usize, style: Fold) {
    let mut rest = line;
    let mut first = true;
    loop {
        let prefix = match (first, style) {
            (true, _) => "",
            (false, Fold::Header) if rest.starts_with(' ') => "",
            (false, Fold::Header) => " ",
            (false, Fold::Text) => "    ",
        };
        let width = match style {
            Fold::Header => SOFT_WIDTH,
            Fold::Text => TEXT_WIDTH,
        };
        let soft = width.saturating_sub(prefix.len());
        let hard = HARD_WIDTH - prefix.len();
        out.push_str(prefix);
        if rest.len() <= soft {
            out.push_str(rest);
            out.push_str("\r\n");
            return;
        }
        // A break at byte `i` ends this line with rest[..i]; index 0 is the
        // leading space of a header continuation, never a useful break.
        let start = if first { min_break.max(1) } else { 1 };
        let bytes = rest.as_bytes();
        let space_in = |lo: usize, hi: usize, last: bool| {
            let hi = hi.min(bytes.len().saturating_sub(1));
            if lo > hi {
                return None;
            }
            let mut range = bytes[lo..=hi].iter();
            let found = if last {
                range.rposition(|&b| b == b' ')
            } else {
                range.position(|&b| b == b' ')
            };
            found.map(|p| lo + p)
        };
        let (end, next) = if let Some(i) = space_in(start, soft, true) {
            (i, i)
        } else if let Some(i) = space_in(start, hard, false) {
            (i, i)
        } else if rest.len() <= hard {
            (rest.len(), rest.len())
        } else {
            let mut j = hard;
            while !rest.is_char_boundary(j) {
                j -= 1;
            }
            (j, j)
        };
        out.push_str(&rest[..end]);
        out.push_str("\r\n");
        rest = &rest[next..];
        if style == Fold::Text {
            rest = rest.strip_prefix(' ').unwrap_or(rest);
        }
        if rest.is_empty() {
            return;
        }
        first = false;
    }
}

/// Postfix's `header_size_limit` default: the most of an original's
/// header section a notification returns.
const HEADER_SECTION_LIMIT: usize = 102_400;

/// The original's header section, as returned instead of the whole
/// message: up to and including the blank line that ends it, stopping
/// earlier at the first line that is not a header field or a continuation
/// (a message without a blank line has no body separator, and its "header
/// section" must not turn out to be the whole message), and at
/// [`HEADER_SECTION_LIMIT`] bytes.
fn header_section(message: &[u8]) -> &[u8] {
    let mut start = 0;
    while start < message.len() {
        let end = message[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(message.len(), |p| start + p + 1);
        let line = &message[start..end];
        if line == b"\n" || line == b"\r\n" {
            return &message[..end];
        }
        if !is_header_line(line, start == 0) || end > HEADER_SECTION_LIMIT {
            return &message[..start];
        }
        start = end;
    }
    message
}

/// `Name: value` (printable ASCII name, no space) or, after the first
/// line, a continuation starting with white space.
fn is_header_line(line: &[u8], first: bool) -> bool {
    if !first && matches!(line.first(), Some(b' ' | b'\t')) {
        return true;
    }
    match line.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => line[..colon].iter().all(|b| (33..=126).contains(b)),
        _ => false,
    }
}

/// Appends `data` with every bare CR or LF turned into CRLF, and a final
/// CRLF if the data does not end in one.
fn push_crlf_normalized(out: &mut Vec<u8>, data: &[u8]) {
    let mut rest = data;
    while let Some(p) = rest.iter().position(|&b| b == b'\r' || b == b'\n') {
        out.extend_from_slice(&rest[..p]);
        out.extend_from_slice(b"\r\n");
        let skip = if rest[p] == b'\r' && rest.get(p + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        rest = &rest[p + skip..];
    }
    out.extend_from_slice(rest);
    if !rest.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
}

/// The first boundary tried, Postfix-style: `<queue id>.<unix time>/<host>`.
fn base_boundary(queue_id: &str, secs: i64, domain: &str) -> String {
    let mut b: String = format!("{}.{secs}/{domain}", id_token(queue_id));
    b.truncate(MAX_BOUNDARY_LEN);
    b
}

/// `base` if it occurs in none of `parts`, else a variation of it that does
/// not.
fn choose_boundary(base: String, seed: u64, parts: &[&[u8]]) -> String {
    let free = |b: &str| !parts.iter().any(|p| contains(p, b.as_bytes()));
    if free(&base) {
        return base;
    }
    let mut stem = base;
    stem.truncate(MAX_BOUNDARY_LEN - 17);
    let mut state = seed;
    loop {
        let candidate = format!("{stem}={:016x}", splitmix64(&mut state));
        if free(&candidate) {
            return candidate;
        }
    }
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// SplitMix64: a small, well-mixing generator for boundary variations.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A queue id reduced to characters safe in a Message-Id and a boundary.
fn id_token(queue_id: &str) -> String {
    let t: String = queue_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(32)
        .collect();
    if t.is_empty() { "0".to_owned() } else { t }
}

/// The reporting host as an ASCII domain for `From:`, the Message-Id and
/// the boundary (`localhost` should it not be one).
fn domain_token(host: &str) -> String {
    let host = host.strip_suffix('.').unwrap_or(host);
    ascii_domain(host).map_or_else(|| "localhost".to_owned(), Cow::into_owned)
}

/// Whole seconds since the Unix epoch (negative before it, rounded down).
fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            -s - i64::from(d.subsec_nanos() > 0)
        }
    }
}

/// Low 64 bits of nanoseconds since the epoch (0 before it).
fn nanos_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// RFC 5322 date-time in UTC: `Sat, 28 Nov 2026 16:03:54 +0000`.
fn format_date(t: SystemTime) -> String {
    MailTime::new(t).rfc5322().to_string()
}

/// `YYYYMMDDhhmmss` in UTC, for the Message-Id.
fn compact_date(secs: i64) -> String {
    MailTime::from_unix(secs).compact().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// 2026-11-28 16:03:54 UTC.
    const NOW: u64 = 1_795_881_834;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const ORIGINAL: &[u8] = b"From: alice@example.org\r\nTo: bob@example.com\r\nSubject: hi\r\nMessage-Id: <1@example.org>\r\n\r\nHello Bob.\r\n\r\nSecond paragraph.\r\n";

    fn failed(address: &str) -> DsnRecipient {
        DsnRecipient {
            address: address.to_owned(),
            orcpt: None,
            action: DsnAction::Failed,
            status: "5.1.1".to_owned(),
            remote_mta: Some("mx.example.com".to_owned()),
            diagnostic: Some("550 5.1.1 User unknown".to_owned()),
            reason: "host mx.example.com[192.0.2.1] said: 550 5.1.1 User unknown (in reply to RCPT TO command)".to_owned(),
        }
    }

    fn delayed(address: &str) -> DsnRecipient {
        DsnRecipient {
            action: DsnAction::Delayed,
            status: "4.4.1".to_owned(),
            remote_mta: None,
            diagnostic: None,
            reason: "connect to mx.example.com[192.0.2.1]:25: Connection timed out".to_owned(),
            ..failed(address)
        }
    }

    fn report<'a>(recipients: &'a [DsnRecipient], original: &'a [u8]) -> DsnReport<'a> {
        DsnReport {
            reporting_mta: "relay.example.net",
            queue_id: "4D0A61A2E3",
            sender: "alice@example.org",
            envid: None,
            arrival: at(NOW - 5 * 3600),
            now: at(NOW),
            recipients,
            original,
            headers_only: false,
            size_limit: DEFAULT_BOUNCE_SIZE_LIMIT,
            will_retry_until: None,
        }
    }

    /// A MIME part: its header section and its content.
    struct Part {
        headers: String,
        body: Vec<u8>,
    }

    /// The parsed notification.
    struct Parsed {
        headers: String,
        boundary: String,
        parts: Vec<Part>,
    }

    fn split_once<'b>(data: &'b [u8], sep: &[u8]) -> Option<(&'b [u8], &'b [u8])> {
        let i = data.windows(sep.len()).position(|w| w == sep)?;
        Some((&data[..i], &data[i + sep.len()..]))
    }

    /// Minimal MIME parsing: top headers, boundary, parts split on
    /// `CRLF--boundary`.
    fn parse(msg: &[u8]) -> Parsed {
        let (head, body) = split_once(msg, b"\r\n\r\n").expect("header/body separator");
        let headers = String::from_utf8(head.to_vec()).expect("ASCII headers") + "\r\n";
        let marker = "boundary=\"";
        let b_at = headers.find(marker).expect("boundary parameter") + marker.len();
        let boundary = headers[b_at..headers[b_at..].find('"').unwrap() + b_at].to_owned();
        let delimiter = format!("\r\n--{boundary}");
        let mut chunks = Vec::new();
        // Prepend CRLF so the first delimiter is found like the others.
        let mut rest: Vec<u8> = [b"\r\n".as_slice(), body].concat();
        while let Some((chunk, after)) = split_once(&rest, delimiter.as_bytes()) {
            chunks.push(chunk.to_vec());
            rest = after.to_vec();
        }
        assert_eq!(rest, b"--\r\n", "close delimiter ends the message");
        assert_eq!(
            chunks[0], b"\r\nThis is a MIME-encapsulated message.\r\n",
            "preamble"
        );
        let parts = chunks[1..]
            .iter()
            .map(|c| {
                let c = c.strip_prefix(b"\r\n").expect("CRLF after delimiter");
                let (h, b) = split_once(c, b"\r\n\r\n").expect("part header/body");
                Part {
                    headers: String::from_utf8(h.to_vec()).unwrap() + "\r\n",
                    body: b.to_vec(),
                }
            })
            .collect();
        Parsed {
            headers,
            boundary,
            parts,
        }
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    /// Every line ends in CRLF, there is no bare CR or LF, and no line is
    /// longer than 998 octets.
    fn assert_wellformed(msg: &[u8]) {
        assert!(msg.ends_with(b"\r\n"));
        for (i, &b) in msg.iter().enumerate() {
            if b == b'\n' {
                assert!(i > 0 && msg[i - 1] == b'\r', "bare LF at {i}");
            }
            if b == b'\r' {
                assert_eq!(msg.get(i + 1), Some(&b'\n'), "bare CR at {i}");
            }
        }
        for line in msg.split(|&b| b == b'\n') {
            assert!(line.len() <= 999, "line of {} octets", line.len() - 1);
        }
    }

    #[test]
    fn dates_are_rfc5322_utc() {
        let cases: &[(i64, &str)] = &[
            (1_795_881_834, "Sat, 28 Nov 2026 16:03:54 +0000"),
            (0, "Thu, 01 Jan 1970 00:00:00 +0000"),
            (1_709_251_199, "Thu, 29 Feb 2024 23:59:59 +0000"),
            (-1, "Wed, 31 Dec 1969 23:59:59 +0000"),
        ];
        for &(secs, want) in cases {
            let t = if secs >= 0 {
                at(secs as u64)
            } else {
                UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
            };
            assert_eq!(format_date(t), want, "{secs}");
        }
        assert_eq!(compact_date(1_795_881_834), "20261128160354");
    }

    #[test]
    fn failed_report_has_three_parts_and_recipient_fields() {
        let rcpts = [failed("bob@example.com")];
        let msg = build_dsn(&report(&rcpts, ORIGINAL));
        assert_wellformed(&msg);
        let p = parse(&msg);
        for want in [
            "Date: Sat, 28 Nov 2026 16:03:54 +0000\r\n",
            "From: MAILER-DAEMON@relay.example.net (Mail Delivery System)\r\n",
            "To: alice@example.org\r\n",
            "Subject: Undelivered Mail Returned to Sender\r\n",
            "Auto-Submitted: auto-replied\r\n",
            "MIME-Version: 1.0\r\n",
            "Content-Type: multipart/report; report-type=delivery-status;\r\n",
        ] {
            assert!(
                p.headers.contains(want),
                "missing {want:?} in {}",
                p.headers
            );
        }
        assert!(
            p.headers
                .contains("Message-Id: <20261128160354.4D0A61A2E3.")
        );
        assert!(p.headers.contains("@relay.example.net>\r\n"));
        assert!(!p.headers.contains("Content-Transfer-Encoding"));
        assert_eq!(p.parts.len(), 3);

        let [notice, report_part, original] = &p.parts[..] else {
            unreachable!()
        };
        assert!(
            notice
                .headers
                .contains("Content-Description: Notification\r\n")
        );
        assert!(
            notice
                .headers
                .contains("Content-Type: text/plain; charset=us-ascii\r\n")
        );
        let t = text(&notice.body);
        assert!(t.starts_with(
            "This is the mail system at host relay.example.net.\r\n\r\n\
             I'm sorry to have to inform you that your message could not\r\n\
             be delivered to one or more recipients. It's attached below.\r\n\r\n"
        ));
        assert!(
            t.contains(
                "<bob@example.com>: host mx.example.com[192.0.2.1] said: 550 5.1.1 User\r\n    \
             unknown (in reply to RCPT TO command)\r\n"
            ),
            "{t}"
        );

        assert!(
            report_part
                .headers
                .contains("Content-Description: Delivery report\r\n")
        );
        assert!(
            report_part
                .headers
                .contains("Content-Type: message/delivery-status\r\n")
        );
        assert_eq!(
            text(&report_part.body),
            "Reporting-MTA: dns; relay.example.net\r\n\
             X-Postfix-Queue-ID: 4D0A61A2E3\r\n\
             X-Postfix-Sender: rfc822; alice@example.org\r\n\
             Arrival-Date: Sat, 28 Nov 2026 11:03:54 +0000\r\n\
             \r\n\
             Final-Recipient: rfc822; bob@example.com\r\n\
             Action: failed\r\n\
             Status: 5.1.1\r\n\
             Remote-MTA: dns; mx.example.com\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\
             Last-Attempt-Date: Sat, 28 Nov 2026 16:03:54 +0000\r\n"
        );

        assert!(
            original
                .headers
                .contains("Content-Description: Undelivered Message\r\n")
        );
        assert!(
            original
                .headers
                .contains("Content-Type: message/rfc822\r\n")
        );
        assert!(
            original
                .headers
                .contains("Content-Transfer-Encoding: 7bit\r\n")
        );
        assert_eq!(original.body, ORIGINAL);
    }

    #[test]
    fn orcpt_and_envid_are_carried_verbatim() {
        let mut r = failed("bob@example.com");
        r.orcpt = Some("rfc822;bob+2Bx@example.com".to_owned());
        let rcpts = [r];
        let mut rep = report(&rcpts, ORIGINAL);
        rep.envid = Some("QQ314159+2Bx");
        let p = parse(&build_dsn(&rep));
        let status = text(&p.parts[1].body);
        assert!(
            status.contains("Original-Envelope-Id: QQ314159+2Bx\r\n"),
            "{status}"
        );
        assert!(
            status.contains(
                "Final-Recipient: rfc822; bob@example.com\r\n\
                 Original-Recipient: rfc822;bob+2Bx@example.com\r\n\
                 Action: failed\r\n"
            ),
            "{status}"
        );
    }

    #[test]
    fn headers_only_and_size_limit_return_the_header_section() {
        let rcpts = [failed("bob@example.com")];
        let header_section = b"From: alice@example.org\r\nTo: bob@example.com\r\nSubject: hi\r\nMessage-Id: <1@example.org>\r\n\r\n";
        type Tweak = fn(&mut DsnReport<'_>);
        let cases: &[(&str, Tweak, bool)] = &[
            ("full", |_| {}, false),
            ("RET=HDRS", |r| r.headers_only = true, true),
            ("over size limit", |r| r.size_limit = 40, true),
            ("exactly at limit", |r| r.size_limit = ORIGINAL.len(), false),
        ];
        for (name, tweak, headers_only) in cases {
            let mut rep = report(&rcpts, ORIGINAL);
            tweak(&mut rep);
            assert_eq!(rep.returns_headers_only(), *headers_only, "{name}");
            let msg = build_dsn(&rep);
            assert_wellformed(&msg);
            let p = parse(&msg);
            let part = &p.parts[2];
            if *headers_only {
                assert!(
                    part.headers
                        .contains("Content-Type: text/rfc822-headers\r\n"),
                    "{name}"
                );
                assert!(
                    part.headers
                        .contains("Content-Description: Undelivered Message Headers\r\n"),
                    "{name}"
                );
                assert_eq!(part.body, header_section, "{name}");
                assert!(!contains(&msg, b"Hello Bob."), "{name}: body returned");
            } else {
                assert!(
                    part.headers.contains("Content-Type: message/rfc822\r\n"),
                    "{name}"
                );
                assert_eq!(part.body, ORIGINAL, "{name}");
            }
        }
    }

    #[test]
    fn header_section_extraction() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"A: 1\r\nB: 2\r\n\r\nbody\r\n", b"A: 1\r\nB: 2\r\n\r\n"),
            (b"A: 1\r\nB: 2\r\n", b"A: 1\r\nB: 2\r\n"),
            (b"A: 1", b"A: 1"),
            (b"\r\nbody\r\n", b"\r\n"),
            (b"A: 1\nB: 2\n\nbody\n", b"A: 1\nB: 2\n\n"),
            (b"", b""),
            (b"A: 1\r\n folded\r\n\r\nb\r\n", b"A: 1\r\n folded\r\n\r\n"),
            // No blank line: the section ends where the header fields do.
            (b"A: 1\r\nthis is body text\r\nmore\r\n", b"A: 1\r\n"),
            (b"just text, no header\r\n", b""),
            (b" leading space\r\n", b""),
        ];
        for (msg, want) in cases {
            assert_eq!(header_section(msg), *want, "{:?}", text(msg));
        }
        // A huge header-only message: capped at a line boundary.
        let line = b"X-Filler: 0123456789012345678901234567890123456789\r\n";
        let big: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(line.len() * 5000)
            .collect();
        let got = header_section(&big);
        assert!(got.len() <= HEADER_SECTION_LIMIT && got.len() > HEADER_SECTION_LIMIT - line.len());
        assert!(got.ends_with(b"\r\n"));
    }

    #[test]
    fn a_returned_message_with_utf8_headers_is_message_global() {
        let rcpts = [failed("bob@example.com")];
        let original = "From: jörg@example.org\r\nSubject: Grüße\r\n\r\nHallo\r\n".as_bytes();
        for (headers_only, want) in [(false, "message/global"), (true, "message/global-headers")] {
            let mut rep = report(&rcpts, original);
            rep.headers_only = headers_only;
            let msg = build_dsn(&rep);
            assert_wellformed(&msg);
            let text = String::from_utf8_lossy(&msg);
            assert!(
                text.contains(&format!("Content-Type: {want}\r\n")),
                "{want}:\n{text}"
            );
            assert!(text.contains("Content-Transfer-Encoding: 8bit"));
        }
        // An 8-bit body under ASCII headers stays message/rfc822.
        let original = b"Subject: hi\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9\r\n";
        let msg = build_dsn(&report(&rcpts, original));
        assert!(contains(&msg, b"Content-Type: message/rfc822\r\n"));
    }

    #[test]
    fn size_limit_holds_for_a_message_without_a_blank_line() {
        let rcpts = [failed("bob@example.com")];
        let mut original = b"Subject: no separator\r\n".to_vec();
        for _ in 0..20_000 {
            original.extend_from_slice(b"body text that is not a header\r\n");
        }
        let mut rep = report(&rcpts, &original);
        rep.size_limit = 1000;
        let msg = build_dsn(&rep);
        assert_wellformed(&msg);
        assert!(
            msg.len() < 5000,
            "the whole original came back: {} bytes",
            msg.len()
        );
        assert!(contains(&msg, b"Subject: no separator"));
    }

    #[test]
    fn original_line_endings_are_normalized() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"a\r\nb\r\n", b"a\r\nb\r\n"),
            (b"a\nb", b"a\r\nb\r\n"),
            (b"a\rb\r\n", b"a\r\nb\r\n"),
            (b"a\r\n\r\n", b"a\r\n\r\n"),
            (b"", b""),
        ];
        for (input, want) in cases {
            let mut out = Vec::new();
            push_crlf_normalized(&mut out, input);
            assert_eq!(out, *want, "{:?}", text(input));
        }
    }

    #[test]
    fn delayed_report_gets_delay_subject_and_retry_until() {
        let rcpts = [delayed("bob@example.com")];
        let mut rep = report(&rcpts, ORIGINAL);
        rep.will_retry_until = Some(at(NOW + 4 * 86_400));
        assert_eq!(rep.kind(), DsnKind::Delay);
        let msg = build_dsn(&rep);
        assert_wellformed(&msg);
        let p = parse(&msg);
        assert!(
            p.headers
                .contains("Subject: Delayed Mail (still being retried)\r\n")
        );
        let t = text(&p.parts[0].body);
        assert!(t.contains("THIS IS A WARNING ONLY"), "{t}");
        assert!(
            t.contains(
                "Your message could not be delivered for 5 hour(s).\r\n\
                 It has not been delivered yet and will be retried until\r\n\
                 Wed, 02 Dec 2026 16:03:54 +0000.\r\n"
            ),
            "{t}"
        );
        let status = text(&p.parts[1].body);
        assert!(
            status.contains(
                "Action: delayed\r\n\
             Status: 4.4.1\r\n\
             Last-Attempt-Date: Sat, 28 Nov 2026 16:03:54 +0000\r\n\
             Will-Retry-Until: Wed, 02 Dec 2026 16:03:54 +0000\r\n"
            ),
            "{status}"
        );
        assert!(!status.contains("Remote-MTA"));
        assert!(!status.contains("Diagnostic-Code"));
    }

    #[test]
    fn subject_follows_the_actions() {
        let with = |action| DsnRecipient {
            action,
            ..failed("x@example.com")
        };
        let cases: &[(&[DsnAction], DsnKind, &str)] = &[
            (
                &[DsnAction::Failed],
                DsnKind::Failure,
                "Undelivered Mail Returned to Sender",
            ),
            (
                &[DsnAction::Delayed, DsnAction::Failed],
                DsnKind::Failure,
                "Undelivered Mail Returned to Sender",
            ),
            (
                &[DsnAction::Delayed, DsnAction::Delayed],
                DsnKind::Delay,
                "Delayed Mail (still being retried)",
            ),
            (
                &[DsnAction::Delivered, DsnAction::Relayed],
                DsnKind::Success,
                "Successful Mail Delivery Report",
            ),
            (&[], DsnKind::Failure, "Undelivered Mail Returned to Sender"),
        ];
        for (actions, kind, subject) in cases {
            let rcpts: Vec<_> = actions.iter().map(|&a| with(a)).collect();
            let rep = report(&rcpts, ORIGINAL);
            assert_eq!(rep.kind(), *kind, "{actions:?}");
            let msg = build_dsn(&rep);
            assert_wellformed(&msg);
            let p = parse(&msg);
            assert!(
                p.headers.contains(&format!("Subject: {subject}\r\n")),
                "{actions:?}"
            );
            let status = text(&p.parts[1].body);
            for a in *actions {
                assert!(status.contains(&format!("Action: {}\r\n", a.as_str())));
            }
        }
        // Success reports carry no Last-Attempt-Date.
        let rcpts = [with(DsnAction::Delivered)];
        let p = parse(&build_dsn(&report(&rcpts, ORIGINAL)));
        assert!(!text(&p.parts[1].body).contains("Last-Attempt-Date"));
        assert!(text(&p.parts[0].body).contains("successfully delivered"));
    }

    #[test]
    fn boundary_never_occurs_in_the_original() {
        let rcpts = [failed("bob@example.com")];
        let first = base_boundary("4D0A61A2E3", NOW as i64, "relay.example.net");
        assert_eq!(first, "4D0A61A2E3.1795881834/relay.example.net");
        // Without a collision the first choice is used.
        let p = parse(&build_dsn(&report(&rcpts, ORIGINAL)));
        assert_eq!(p.boundary, first);

        let hostile = format!(
            "Subject: trap\r\n\r\n--{first}\r\nContent-Type: text/plain\r\n\r\nfake\r\n--{first}--\r\n"
        );
        let msg = build_dsn(&report(&rcpts, hostile.as_bytes()));
        assert_wellformed(&msg);
        let p = parse(&msg);
        assert_ne!(p.boundary, first);
        assert!(p.boundary.len() <= MAX_BOUNDARY_LEN);
        assert!(!contains(hostile.as_bytes(), p.boundary.as_bytes()));
        assert_eq!(p.parts.len(), 3);
        assert_eq!(p.parts[2].body, hostile.as_bytes());

        // A boundary in a reason (part 1) is avoided too.
        let mut r = failed("bob@example.com");
        r.reason = format!("said: {first}");
        let rcpts = [r];
        let p = parse(&build_dsn(&report(&rcpts, ORIGINAL)));
        assert_ne!(p.boundary, first);
        assert_eq!(p.parts.len(), 3);
    }

    #[test]
    fn outside_values_cannot_inject_header_lines() {
        let mut r = failed("bob@example.com\r\nBcc: x@evil.example");
        r.reason = "bad\r\nBcc: x@evil.example".to_owned();
        r.diagnostic = Some("550 no\r\nBcc: x@evil.example\r\n\r\nbody".to_owned());
        r.remote_mta = Some("mx\nBcc: y".to_owned());
        r.orcpt = Some("rfc822;a\rBcc: z".to_owned());
        r.status = "5.1.1\r\nX-Evil: 1".to_owned();
        let rcpts = [r];
        let mut rep = report(&rcpts, ORIGINAL);
        rep.sender = "alice@example.org\r\nBcc: w@evil.example";
        rep.envid = Some("id\r\nBcc: v");
        let msg = build_dsn(&rep);
        assert_wellformed(&msg);
        for line in msg.split(|&b| b == b'\n') {
            assert!(!line.starts_with(b"Bcc:"), "injected {:?}", text(line));
            assert!(!line.starts_with(b"X-Evil:"), "injected {:?}", text(line));
        }
        let p = parse(&msg);
        assert_eq!(p.parts.len(), 3);
        assert!(
            p.headers
                .contains("To: alice@example.org Bcc: w@evil.example\r\n")
        );
        let t = text(&p.parts[0].body);
        assert!(
            t.contains("<bob@example.com Bcc: x@evil.example>: bad Bcc: x@evil.example\r\n"),
            "{t}"
        );
        let status = text(&p.parts[1].body);
        assert!(
            status.contains("Diagnostic-Code: smtp; 550 no Bcc: x@evil.example body\r\n"),
            "{status}"
        );
        // The report part has exactly one blank line (between the
        // per-message and the per-recipient fields).
        assert_eq!(status.matches("\r\n\r\n").count(), 1, "{status}");
    }

    #[test]
    fn long_values_are_folded_within_line_limits() {
        let long_reply = format!("550 5.7.1 {}", "word ".repeat(400));
        let long_token = "x".repeat(5000);
        let mut r = failed(&format!("{}@example.com", "a".repeat(1200)));
        r.reason = format!("host said: {long_reply} {long_token}");
        r.diagnostic = Some(format!("{long_token} {long_reply}"));
        let rcpts = [r, failed("bob@example.com")];
        let mut rep = report(&rcpts, ORIGINAL);
        let sender = format!("{}@example.org", "s".repeat(1500));
        rep.sender = &sender;
        let msg = build_dsn(&rep);
        assert_wellformed(&msg);
        let p = parse(&msg);
        assert_eq!(p.parts.len(), 3);
        let status = text(&p.parts[1].body);
        // Folded, the Diagnostic-Code unfolds to a (capped) single field.
        let diag_at = status.find("Diagnostic-Code: ").unwrap();
        let diag_end = status[diag_at..].find("\r\nLast-Attempt-Date").unwrap() + diag_at;
        let diag = &status[diag_at..diag_end];
        assert!(diag.contains("\r\n "), "folded");
        for cont in diag.split("\r\n").skip(1) {
            assert!(
                cont.starts_with(' ') && cont.trim() != "",
                "continuation {cont:?}"
            );
        }
        assert!(diag.ends_with("..."), "capped at MAX_VALUE_LEN");
        // Short ordinary fields stay on one line.
        assert!(status.contains("Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"));
        // Text continuation lines are indented like Postfix's.
        let t = text(&p.parts[0].body);
        assert!(t.contains("\r\n    word word"), "{t}");
    }

    #[test]
    fn folding_keeps_lines_short_and_unfolds_to_the_value() {
        let value = "alpha beta gamma ".repeat(30);
        let value = value.trim_end();
        let mut out = String::new();
        header(&mut out, "Diagnostic-Code", value);
        for line in out.split_terminator("\r\n") {
            assert!(line.len() <= SOFT_WIDTH, "{line:?}");
        }
        assert_eq!(out.replace("\r\n", ""), format!("Diagnostic-Code: {value}"));
        // Short values are untouched; an over-long token is split.
        let mut out = String::new();
        header(&mut out, "Status", "5.1.1");
        assert_eq!(out, "Status: 5.1.1\r\n");
        let mut out = String::new();
        header(&mut out, "X", &"é".repeat(600));
        assert!(out.split_terminator("\r\n").all(|l| l.len() <= HARD_WIDTH));
        assert_eq!(out.split_terminator("\r\n").count(), 2);
    }

    #[test]
    fn message_ids_are_unique() {
        let rcpts = [failed("bob@example.com")];
        let rep = report(&rcpts, ORIGINAL);
        let id = |msg: &[u8]| {
            let p = parse(msg);
            let at = p.headers.find("Message-Id: ").unwrap();
            p.headers[at..].lines().next().unwrap().to_owned()
        };
        let a = id(&build_dsn(&rep));
        let b = id(&build_dsn(&rep));
        assert_ne!(a, b);
    }

    #[test]
    fn non_ascii_switches_to_utf8_and_global_status() {
        let mut r = failed("josé@example.com");
        r.reason = "boîte pleine".to_owned();
        let rcpts = [r];
        let original = "Subject: café\r\n\r\nvoilà\r\n".as_bytes();
        let msg = build_dsn(&report(&rcpts, original));
        assert_wellformed(&msg);
        let p = parse(&msg);
        assert!(p.headers.contains("Content-Transfer-Encoding: 8bit\r\n"));
        assert!(p.parts[0].headers.contains("charset=utf-8"));
        assert!(
            p.parts[1]
                .headers
                .contains("Content-Type: message/global-delivery-status\r\n")
        );
        assert!(text(&p.parts[1].body).contains("Final-Recipient: utf-8; josé@example.com\r\n"));
        assert!(
            p.parts[2]
                .headers
                .contains("Content-Transfer-Encoding: 8bit\r\n")
        );
    }

    #[test]
    fn clean_replaces_controls_and_caps_length() {
        assert_eq!(clean("  a\r\n\tb\u{0}c\u{7f}d\u{85}e  "), "a b c d e");
        let long = "y".repeat(MAX_VALUE_LEN + 10);
        let c = clean(&long);
        assert_eq!(c.len(), MAX_VALUE_LEN + 3);
        assert!(c.ends_with("..."));
    }
}
