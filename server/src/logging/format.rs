//! The two line formats: Postfix's syslog shape, and one JSON object per
//! event carrying the same fields.

use std::fmt::{self, Write as _};

use serde_json::{Map, Value};
use towerpost_protocol::MailTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// What every line carries besides its text.
pub(super) struct LineFormat {
    /// The first label of `myhostname`, as syslog writes it.
    pub(super) host: String,
    /// `syslog_name`.
    pub(super) program: String,
    pub(super) pid: u32,
}

/// `Mon DD HH:MM:SS host towerpost/<service>[pid]: [warning: ]text`.
pub(super) struct PostfixFormat(pub(super) LineFormat);

/// `{"time": …, "host": …, "program": "towerpost/smtpd", "pid": …,
/// "severity": "info", "queue_id": …, "message": …, "to": …, …}`.
pub(super) struct JsonFormat(pub(super) LineFormat);

/// The parts of one event.
struct Line {
    /// `smtpd`, `qmgr`, …: the second part of the target
    /// `towerpost::<service>`; other crates' events use their target.
    service: String,
    severity: Option<&'static str>,
    text: String,
}

impl Line {
    fn of(event: &Event<'_>) -> Self {
        let meta = event.metadata();
        let target = meta.target();
        let service = target.strip_prefix("towerpost::").unwrap_or(target);
        let service = service.split("::").next().unwrap_or(service).to_owned();
        let severity = match *meta.level() {
            Level::WARN => Some("warning"),
            Level::ERROR => Some("error"),
            _ => None,
        };
        let mut text = Text(String::new());
        event.record(&mut text);
        Self {
            service,
            severity,
            text: text.0,
        }
    }
}

/// Collects an event's message, then any other fields as ` name=value`.
struct Text(String);

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            // `format_args!` messages print as themselves.
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl<S, N> FormatEvent<S, N> for PostfixFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let f = &self.0;
        let line = Line::of(event);
        let stamp = MailTime::new(std::time::SystemTime::now()).log_stamp();
        write!(
            writer,
            "{stamp} {} {}/{}[{}]: ",
            f.host, f.program, line.service, f.pid
        )?;
        if let Some(severity) = line.severity {
            write!(writer, "{severity}: ")?;
        }
        writeln!(writer, "{}", line.text)
    }
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let line = Line::of(event);
        let time = MailTime::new(std::time::SystemTime::now()).rfc3339();
        let object = json_object(&self.0, &line, &time.to_string());
        writeln!(writer, "{}", Value::Object(object))
    }
}

/// The fields Postfix's lines carry as `name=value`, in the order they
/// appear; only these are lifted out of the text into their own members.
const FIELDS: &[&str] = &[
    "client",
    "sasl_method",
    "sasl_username",
    "message-id",
    "from",
    "size",
    "nrcpt",
    "to",
    "orig_to",
    "relay",
    "delay",
    "delays",
    "dsn",
    "status",
    "proto",
    "helo",
];

fn json_object(f: &LineFormat, line: &Line, time: &str) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("time".into(), time.into());
    o.insert("host".into(), f.host.clone().into());
    o.insert(
        "program".into(),
        format!("{}/{}", f.program, line.service).into(),
    );
    o.insert("pid".into(), f.pid.into());
    o.insert("severity".into(), line.severity.unwrap_or("info").into());
    let (queue_id, rest) = split_queue_id(&line.text);
    if let Some(id) = queue_id {
        o.insert("queue_id".into(), id.into());
    }
    for (name, value) in fields(rest) {
        o.entry(name).or_insert(value);
    }
    o.insert("message".into(), line.text.clone().into());
    o
}

/// `0DJ4QW7H2KX: text` → the queue id (or `NOQUEUE`) and the text after it.
fn split_queue_id(text: &str) -> (Option<&str>, &str) {
    match text.split_once(": ") {
        Some((id, rest))
            if id.len() >= 10
                && id
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
        {
            (Some(id), rest)
        }
        _ => (None, text),
    }
}

/// The [`FIELDS`] in `text`, each up to the next one. A field starts only
/// after a space, never inside `<…>` or `"…"` (an address's quoted local
/// part may hold anything); `status=` and `helo=` come last in Postfix's
/// lines and run to the end (a remote server's words, a client's HELO
/// name); the first occurrence of a name wins. The client-chosen values
/// that come before other fields (SASL user names, Message-IDs) are logged
/// without spaces, so they cannot start one. The members are a
/// convenience; `message` is the record.
fn fields(text: &str) -> Vec<(String, Value)> {
    let mut starts: Vec<(usize, &str)> = Vec::new();
    let (mut in_brackets, mut in_quotes, mut escaped) = (false, false, false);
    for (i, c) in text.char_indices() {
        let was_escaped = std::mem::take(&mut escaped);
        match c {
            '\\' if in_quotes && !was_escaped => escaped = true,
            '"' if !was_escaped => in_quotes = !in_quotes,
            '<' if !in_quotes => in_brackets = true,
            '>' if !in_quotes => in_brackets = false,
            _ => {}
        }
        let boundary = i == 0 || text.as_bytes()[i - 1] == b' ';
        if in_brackets || in_quotes || !boundary {
            continue;
        }
        if let Some(name) = FIELDS
            .iter()
            .find(|n| text[i..].starts_with(*n) && text[i + n.len()..].starts_with('='))
        {
            starts.push((i, name));
            if matches!(*name, "status" | "helo") {
                break;
            }
        }
    }
    let mut out = Vec::new();
    for (k, &(start, name)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(text.len(), |&(next, _)| next);
        let raw = text[start + name.len() + 1..end].trim_end_matches([' ', ',', ';']);
        out.extend(field_values(name, raw));
    }
    out
}

/// One field's JSON members: numbers as numbers, `<address>` without its
/// brackets, `status=sent (detail)` as `status` and `detail`.
fn field_values(name: &str, raw: &str) -> Vec<(String, Value)> {
    let unbracketed = |s: &str| {
        s.strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .unwrap_or(s)
            .to_owned()
    };
    match name {
        "size" | "nrcpt" => match raw.split(' ').next().and_then(|n| n.parse::<u64>().ok()) {
            Some(n) => vec![(name.into(), n.into())],
            None => vec![(name.into(), raw.into())],
        },
        "delay" => match raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            Some(n) => vec![(name.into(), Value::Number(n))],
            None => vec![(name.into(), raw.into())],
        },
        "from" | "to" | "orig_to" | "helo" | "message-id" => {
            vec![(name.into(), unbracketed(raw).into())]
        }
        "status" => match raw.split_once(" (") {
            Some((status, detail)) => vec![
                ("status".into(), status.into()),
                (
                    "detail".into(),
                    detail.strip_suffix(')').unwrap_or(detail).into(),
                ),
            ],
            None => vec![("status".into(), raw.into())],
        },
        _ => vec![(name.into(), raw.into())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> Value {
        let f = LineFormat {
            host: "mx".into(),
            program: "towerpost".into(),
            pid: 7,
        };
        let line = Line {
            service: "smtp".into(),
            severity: None,
            text: text.into(),
        };
        Value::Object(json_object(&f, &line, "2026-12-03T12:00:00Z"))
    }

    #[test]
    fn a_delivery_line_becomes_its_fields() {
        let text = "1K1Q5R2TA13: to=<ok@relay.test>, relay=127.0.0.1[127.0.0.1]:2626, \
                    delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X1)";
        let o = object(text);
        assert_eq!(o["program"], "towerpost/smtp");
        assert_eq!(o["severity"], "info");
        assert_eq!(o["queue_id"], "1K1Q5R2TA13");
        assert_eq!(o["to"], "ok@relay.test");
        assert_eq!(o["relay"], "127.0.0.1[127.0.0.1]:2626");
        assert_eq!(o["delay"], 0.01);
        assert_eq!(o["delays"], "0/0/0/0");
        assert_eq!(o["dsn"], "2.0.0");
        assert_eq!(o["status"], "sent");
        assert_eq!(o["detail"], "250 2.0.0 Ok: queued as X1");
        assert_eq!(o["message"], text);
    }

    #[test]
    fn queue_active_and_client_lines() {
        let o = object("1K1Q5R2TA13: from=<>, size=417, nrcpt=3 (queue active)");
        assert_eq!(o["from"], "");
        assert_eq!(o["size"], 417);
        assert_eq!(o["nrcpt"], 3);
        let o =
            object("1K1Q5R382EA: client=unknown[127.0.0.1], sasl_method=PLAIN, sasl_username=u");
        assert_eq!(o["client"], "unknown[127.0.0.1]");
        assert_eq!(o["sasl_method"], "PLAIN");
        assert_eq!(o["sasl_username"], "u");
    }

    #[test]
    fn text_a_client_or_remote_chose_cannot_replace_fields() {
        let o = object(
            "NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 454 4.7.1 <x@else.test>: Relay \
             access denied; from=<a@src.test> to=<x@else.test> proto=ESMTP helo=<h to=<y@z> status=sent>",
        );
        assert_eq!(o.get("queue_id"), None, "NOQUEUE is not an id");
        assert_eq!(o["from"], "a@src.test");
        assert_eq!(o["to"], "x@else.test");
        assert_eq!(o["proto"], "ESMTP");
        assert_eq!(o["helo"], "h to=<y@z> status=sent");
        assert_eq!(o.get("status"), None);
        let o =
            object("1K1Q5R2TA13: to=<a@b>, dsn=5.0.0, status=bounced (said: to=<c@d>, dsn=2.0.0)");
        assert_eq!(o["to"], "a@b");
        assert_eq!(o["dsn"], "5.0.0");
        assert_eq!(o["detail"], "said: to=<c@d>, dsn=2.0.0");
    }

    #[test]
    fn values_a_client_chose_before_other_fields_cannot_start_one() {
        // A SASL user name and a Message-ID are logged without spaces.
        let o = object(
            "warning: unknown[127.0.0.1]: SASL PLAIN authentication failed: \
             authentication failure, sasl_username=x,client=10.9.8.7",
        );
        assert_eq!(o["sasl_username"], "x,client=10.9.8.7");
        assert_eq!(o.get("client"), None);
        let o = object("1K1Q63DKTNB: message-id=<a>,client=6.6.6.6,to=<y>");
        assert_eq!(o["message-id"], "a>,client=6.6.6.6,to=<y");
        assert_eq!((o.get("client"), o.get("to")), (None, None));
        // A quoted local part may hold spaces, brackets and field names.
        let o =
            object("1K1Q63DKTNB: from=<\"a> to=<v@x> \\\" b\"@y>, size=10, nrcpt=1 (queue active)");
        assert_eq!(o["from"], "\"a> to=<v@x> \\\" b\"@y");
        assert_eq!(o.get("to"), None);
        assert_eq!(o["size"], 10);
    }

    #[test]
    fn lines_without_fields_keep_only_their_message() {
        let o = object("daemon started -- version 0.1.0");
        assert_eq!(o["message"], "daemon started -- version 0.1.0");
        assert_eq!(o.as_object().unwrap().len(), 6);
    }
}
