//! towerpost's Prometheus metrics: every series declared once, here, with
//! labels from small fixed sets (never a client, a sender or a recipient),
//! so a scrape stays the same size whatever traffic arrives. The one label
//! whose values come from mail, `domain` of
//! [`queue_destination_messages`](Metrics::queue_destination_messages),
//! is refilled at each scrape with at most a configured number of
//! domains.
//!
//! One registry per process, like the log: the counting points are spread
//! over the server, the queue manager and the flush service, and threading
//! a handle through each would change every constructor for no gain, since
//! a process runs one server. [`metrics`] returns it.
//!
//! The text exposition is prometheus-client's (OpenMetrics text, which
//! Prometheus scrapes).

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `reason` of a refused connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// `session_limit` (`smtpd_session_limit`, answered by the listener),
    /// `client_limit` (a per-client limit or a policy answered the
    /// connection instead of the banner) or `proxy_header` (no valid PROXY
    /// protocol header where `smtpd_upstream_proxy_protocol` wants one;
    /// closed without a banner).
    pub reason: &'static str,
}

/// A command and the class of its reply.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// The verb, upper-case, from a fixed list; `other` for anything else.
    pub verb: &'static str,
    /// `2xx`, `3xx`, `4xx` or `5xx`.
    pub class: &'static str,
}

/// An outcome label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// For recipients: `sent`, `deferred`, `bounced`, `expired`.
    pub outcome: &'static str,
}

/// A queue state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `incoming`, `active`, `deferred` or `hold`.
    pub state: &'static str,
}

/// A recipient domain in the queue.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DomainLabels {
    /// Lower-case domain.
    pub domain: String,
}

/// Where a flush request came from and what became of it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlushLabels {
    /// `etrn`, or `local`: a request over the control socket
    /// (`postqueue -s|-f|-i`, `sendmail -q…`, `towerpost flush`).
    pub origin: &'static str,
    /// `queued` (mail was scheduled), `nothing` (nothing queued for it),
    /// `refused` (not allowed or not a fast-flush site), `error`.
    pub outcome: &'static str,
}

/// A TLS handshake.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsLabels {
    /// `inbound` (STARTTLS or implicit TLS from clients) or `outbound`.
    pub direction: &'static str,
    /// `ok` or `failed`.
    pub result: &'static str,
}

/// An AUTH attempt's result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success`, `failure`, or `unavailable` (the password store could
    /// not be read: 454).
    pub result: &'static str,
}

/// A rejection and the rule that made it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// `CONNECT`, `MAIL`, `RCPT`, `ETRN`, `STARTTLS` or `AUTH`.
    pub stage: &'static str,
    /// The restriction or limit that answered (`reject_unauth_destination`,
    /// `smtpd_client_message_rate_limit`, …), from the fixed list of names
    /// towerpost knows.
    pub rule: &'static str,
}

/// Whether an outbound session was opened or reused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReuseLabels {
    /// `new` or `reused`.
    pub session: &'static str,
}

/// Every series towerpost exports.
pub struct Metrics {
    registry: Registry,
    /// Connections accepted by the SMTP listeners.
    pub connections: Counter,
    /// SMTP sessions open now.
    pub connections_open: Gauge,
    /// Connections closed without a session, by reason.
    pub connections_refused: Family<RefusedLabels, Counter>,
    /// Commands answered, by verb and reply class.
    pub commands: Family<CommandLabels, Counter>,
    /// Requests refused by a restriction or limit, by stage and rule.
    pub rejections: Family<RejectLabels, Counter>,
    /// Messages stored (a 250 after DATA or BDAT LAST).
    pub messages_accepted: Counter,
    /// Recipients of stored messages.
    pub recipients_accepted: Counter,
    /// Messages removed from the queue after an attempt that sent to at
    /// least one recipient (the others, if any, returned).
    pub messages_delivered: Counter,
    /// Delivery attempts that left the message deferred.
    pub messages_deferred: Counter,
    /// Non-delivery notifications queued: one per attempt that returned
    /// recipients (bounced or expired) to the sender.
    pub messages_bounced: Counter,
    /// Messages that reached `maximal_queue_lifetime` (or
    /// `bounce_queue_lifetime`) with a recipient still undelivered.
    pub messages_expired: Counter,
    /// Recipient outcomes of delivery attempts.
    pub recipients: Family<OutcomeLabels, Counter>,
    /// Messages in the queue by state, as of the scrape.
    pub queue_messages: Family<StateLabels, Gauge>,
    /// Queued messages (not on hold) with a recipient in a domain: the
    /// domains with the most, and every `fast_flush_domains` site.
    pub queue_destination_messages: Family<DomainLabels, Gauge>,
    /// Flush requests by origin and outcome.
    pub flush_requests: Family<FlushLabels, Counter>,
    /// Time of one delivery to a next hop (connection setup and
    /// transmission).
    pub delivery_duration: Histogram,
    /// Time from arrival to a recipient's final outcome (sent or returned).
    pub queue_time: Histogram,
    /// Outbound SMTP sessions open now.
    pub outbound_sessions_open: Gauge,
    /// Outbound deliveries by whether the session was new or reused.
    pub outbound_sessions: Family<ReuseLabels, Counter>,
    /// TLS handshakes by direction and result.
    pub tls_handshakes: Family<TlsLabels, Counter>,
    /// AUTH attempts by result.
    pub sasl_authentications: Family<ResultLabels, Counter>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("towerpost");
        let connections = Counter::default();
        registry.register(
            "smtpd_connections",
            "Connections accepted by the SMTP listeners",
            connections.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "smtpd_connections_open",
            "SMTP sessions open now",
            connections_open.clone(),
        );
        let connections_refused = Family::default();
        registry.register(
            "smtpd_connections_refused",
            "Connections closed without a session, by reason",
            connections_refused.clone(),
        );
        let commands = Family::default();
        registry.register(
            "smtpd_commands",
            "SMTP commands answered, by verb and reply class",
            commands.clone(),
        );
        let rejections = Family::default();
        registry.register(
            "smtpd_rejections",
            "Requests refused by a restriction or limit, by stage and rule",
            rejections.clone(),
        );
        let messages_accepted = Counter::default();
        registry.register(
            "messages_accepted",
            "Messages stored after DATA or BDAT LAST",
            messages_accepted.clone(),
        );
        let recipients_accepted = Counter::default();
        registry.register(
            "recipients_accepted",
            "Recipients of stored messages",
            recipients_accepted.clone(),
        );
        let messages_delivered = Counter::default();
        registry.register(
            "messages_delivered",
            "Messages removed from the queue after an attempt that sent to a recipient",
            messages_delivered.clone(),
        );
        let messages_deferred = Counter::default();
        registry.register(
            "messages_deferred",
            "Delivery attempts that left the message deferred",
            messages_deferred.clone(),
        );
        let messages_bounced = Counter::default();
        registry.register(
            "messages_bounced",
            "Non-delivery notifications: attempts that returned recipients to the sender",
            messages_bounced.clone(),
        );
        let messages_expired = Counter::default();
        registry.register(
            "messages_expired",
            "Messages that reached their queue lifetime undelivered",
            messages_expired.clone(),
        );
        let recipients = Family::default();
        registry.register(
            "recipients",
            "Recipient outcomes of delivery attempts",
            recipients.clone(),
        );
        let queue_messages = Family::default();
        registry.register(
            "queue_messages",
            "Messages in the queue by state",
            queue_messages.clone(),
        );
        let queue_destination_messages = Family::default();
        registry.register(
            "queue_destination_messages",
            "Queued messages (not on hold) per recipient domain: the largest and every fast-flush site",
            queue_destination_messages.clone(),
        );
        let flush_requests = Family::default();
        registry.register(
            "flush_requests",
            "Flush requests by origin and outcome",
            flush_requests.clone(),
        );
        // 1 ms to about 9 minutes.
        let delivery_duration = Histogram::new(exponential_buckets(0.001, 2.0, 20));
        registry.register(
            "delivery_duration_seconds",
            "Time of one delivery to a next hop",
            delivery_duration.clone(),
        );
        // 10 ms to about 62 days.
        let queue_time = Histogram::new(exponential_buckets(0.01, 3.0, 20));
        registry.register(
            "queue_time_seconds",
            "Time from arrival to a recipient's final outcome",
            queue_time.clone(),
        );
        let outbound_sessions_open = Gauge::default();
        registry.register(
            "smtp_sessions_open",
            "Outbound SMTP sessions open now",
            outbound_sessions_open.clone(),
        );
        let outbound_sessions = Family::default();
        registry.register(
            "smtp_deliveries",
            "Outbound deliveries by session: new or reused",
            outbound_sessions.clone(),
        );
        let tls_handshakes = Family::default();
        registry.register(
            "tls_handshakes",
            "TLS handshakes by direction and result",
            tls_handshakes.clone(),
        );
        let sasl_authentications = Family::default();
        registry.register(
            "smtpd_sasl_authentications",
            "AUTH attempts by result",
            sasl_authentications.clone(),
        );
        Self {
            registry,
            connections,
            connections_open,
            connections_refused,
            commands,
            rejections,
            messages_accepted,
            recipients_accepted,
            messages_delivered,
            messages_deferred,
            messages_bounced,
            messages_expired,
            recipients,
            queue_messages,
            queue_destination_messages,
            flush_requests,
            delivery_duration,
            queue_time,
            outbound_sessions_open,
            outbound_sessions,
            tls_handshakes,
            sasl_authentications,
        }
    }

    /// The text exposition of every series.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts a rejection.
    pub fn reject(&self, stage: &'static str, rule: &'static str) {
        self.rejections
            .get_or_create(&RejectLabels { stage, rule })
            .inc();
    }

    /// Counts a flush request.
    pub fn flush(&self, origin: &'static str, outcome: &'static str) {
        self.flush_requests
            .get_or_create(&FlushLabels { origin, outcome })
            .inc();
    }

    /// Counts a TLS handshake.
    pub fn tls(&self, direction: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.tls_handshakes
            .get_or_create(&TlsLabels { direction, result })
            .inc();
    }
}

/// Counts something in a gauge for as long as it lives: incremented on
/// creation, decremented on drop, so a panic or an aborted task cannot
/// leave the gauge high.
#[derive(Debug)]
pub struct Open(Gauge);

impl Open {
    /// Increments `gauge` until the returned value is dropped.
    pub fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The verb label for a command word: one of SMTP's verbs, or `other`, so
/// a client cannot add series by sending made-up commands.
pub fn verb_label(word: &str) -> &'static str {
    const VERBS: &[&str] = &[
        "EHLO", "HELO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY",
        "EXPN", "HELP", "ETRN", "STARTTLS", "AUTH",
    ];
    VERBS
        .iter()
        .find(|v| v.eq_ignore_ascii_case(word))
        .copied()
        .unwrap_or("other")
}

/// `2xx` … `5xx` for a reply code.
pub fn class_label(code: u16) -> &'static str {
    match code / 100 {
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_named_with_the_prefix_and_unit() {
        let m = Metrics::new();
        m.messages_accepted.inc();
        m.commands
            .get_or_create(&CommandLabels {
                verb: verb_label("ehlo"),
                class: class_label(250),
            })
            .inc();
        m.delivery_duration.observe(0.004);
        let text = m.encode();
        assert!(
            text.contains("towerpost_messages_accepted_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("towerpost_smtpd_commands_total{verb=\"EHLO\",class=\"2xx\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("towerpost_delivery_duration_seconds_count 1\n"),
            "{text}"
        );
    }

    #[test]
    fn made_up_verbs_share_one_label() {
        assert_eq!(verb_label("XYZZY"), "other");
        assert_eq!(verb_label("rcpt"), "RCPT");
        assert_eq!(class_label(354), "3xx");
        assert_eq!(class_label(999), "5xx");
    }
}
