//! The typed values of configuration keys that are more than a number,
//! a string or a list: listeners, modes, transports and limits, with the
//! Postfix spelling their `Display` writes back (for `config show`).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::{Nexthop, Restriction, SmtpdTlsLevel};

/// One `[[listener]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// A unique name, used in logs and errors.
    pub name: String,
    /// The address to bind, such as `127.0.0.1:2525` or `[::1]:25`.
    pub address: SocketAddr,
    /// How TLS is used on this listener.
    pub tls: TlsMode,
    /// Settings of this listener that replace the top-level ones, as
    /// master.cf `-o` overrides do.
    pub overrides: ListenerOverrides,
}

/// The keys a `[[listener]]` table may set for itself; `None` takes the
/// top-level value. See [`Config::smtpd_policy`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListenerOverrides {
    /// `smtpd_sasl_auth_enable`.
    pub smtpd_sasl_auth_enable: Option<bool>,
    /// `smtpd_tls_auth_only`.
    pub smtpd_tls_auth_only: Option<bool>,
    /// `smtpd_tls_security_level`.
    pub smtpd_tls_security_level: Option<SmtpdTlsLevel>,
    /// `smtpd_client_restrictions`.
    pub smtpd_client_restrictions: Option<Vec<Restriction>>,
    /// `smtpd_helo_restrictions`.
    pub smtpd_helo_restrictions: Option<Vec<Restriction>>,
    /// `smtpd_sender_restrictions`.
    pub smtpd_sender_restrictions: Option<Vec<Restriction>>,
    /// `smtpd_relay_restrictions`.
    pub smtpd_relay_restrictions: Option<Vec<Restriction>>,
    /// `smtpd_recipient_restrictions`.
    pub smtpd_recipient_restrictions: Option<Vec<Restriction>>,
    /// `smtpd_upstream_proxy_protocol`.
    pub smtpd_upstream_proxy_protocol: Option<UpstreamProxyProtocol>,
}

/// The effective smtpd policy of one listener: the top-level settings with
/// the listener's overrides applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpdPolicy {
    /// AUTH is offered (subject to `tls_auth_only`).
    pub sasl_auth_enable: bool,
    /// AUTH only under TLS (also true with `tls_security_level = encrypt`).
    pub tls_auth_only: bool,
    /// Whether TLS is mandatory before mail commands.
    pub tls_security_level: SmtpdTlsLevel,
    /// `smtpd_client_restrictions`.
    pub client_restrictions: Vec<Restriction>,
    /// `smtpd_helo_restrictions`.
    pub helo_restrictions: Vec<Restriction>,
    /// `smtpd_sender_restrictions`.
    pub sender_restrictions: Vec<Restriction>,
    /// `smtpd_relay_restrictions`.
    pub relay_restrictions: Vec<Restriction>,
    /// `smtpd_recipient_restrictions`.
    pub recipient_restrictions: Vec<Restriction>,
    /// `smtpd_upstream_proxy_protocol`.
    pub upstream_proxy_protocol: UpstreamProxyProtocol,
}

/// `smtpd_upstream_proxy_protocol`: whether a listener's clients are
/// announced by a PROXY protocol header before any SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UpstreamProxyProtocol {
    /// Empty: the client is whoever connected.
    #[default]
    None,
    /// `haproxy`: the connection starts with a PROXY protocol header,
    /// version 1 (text) or 2 (binary), naming the real client.
    Haproxy,
}

impl UpstreamProxyProtocol {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamProxyProtocol::None => "",
            UpstreamProxyProtocol::Haproxy => "haproxy",
        }
    }
}

impl fmt::Display for UpstreamProxyProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a listener uses TLS (`tls = "none" | "starttls" | "implicit"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TlsMode {
    /// Plain text only.
    #[default]
    None,
    /// Plain text, upgraded by the STARTTLS command.
    StartTls,
    /// TLS from the first byte (submissions, port 465).
    Implicit,
}

impl TlsMode {
    /// The configuration spelling: `none`, `starttls` or `implicit`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::StartTls => "starttls",
            TlsMode::Implicit => "implicit",
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How mail-log lines are written (`log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogFormat {
    /// `postfix`: `Mon DD HH:MM:SS host name/service[pid]: text`, the
    /// syslog shape that pflogsumm, fail2ban and grep already read.
    #[default]
    Postfix,
    /// `json`: one JSON object per line with the same fields.
    Json,
}

impl LogFormat {
    /// The configuration spelling: `postfix` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Postfix => "postfix",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with a bare newline (LF not preceded by CR) from a client
/// (`smtpd_forbid_bare_newline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BareNewline {
    /// `normalize` (Postfix `yes`): accept a bare LF as a line end in
    /// commands and message text (stored as CRLF), but never as part of
    /// the end of DATA, which stays `<CRLF>.<CRLF>` only.
    #[default]
    Normalize,
    /// `reject`: reject commands and messages containing a bare LF.
    Reject,
}

impl BareNewline {
    /// The configuration spelling: `normalize` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            BareNewline::Normalize => "normalize",
            BareNewline::Reject => "reject",
        }
    }
}

impl fmt::Display for BareNewline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the SMTP client uses TLS (`smtp_tls_security_level`, and
/// `tls_security_level` of a `[transport.NAME]` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SmtpTlsLevel {
    /// `none`: never use TLS.
    None,
    /// `may`: opportunistic TLS: use STARTTLS when offered, without
    /// verifying the certificate, and fall back to plain text.
    #[default]
    May,
    /// `encrypt`: mandatory TLS without certificate verification.
    Encrypt,
    /// `verify`: mandatory TLS with a certificate that is valid for the
    /// server name (the MX host name found in DNS).
    Verify,
    /// `secure`: mandatory TLS with a certificate that is valid for the
    /// next-hop name as configured (the domain or `[host]` of
    /// `relayhost` or `transport_maps`), never a name learned from DNS.
    Secure,
}

impl SmtpTlsLevel {
    /// The configuration spelling: `none`, `may`, `encrypt`, `verify` or
    /// `secure`.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTlsLevel::None => "none",
            SmtpTlsLevel::May => "may",
            SmtpTlsLevel::Encrypt => "encrypt",
            SmtpTlsLevel::Verify => "verify",
            SmtpTlsLevel::Secure => "secure",
        }
    }
}

impl fmt::Display for SmtpTlsLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `transport_maps` entry: `transport:nexthop`, either part empty.
///
/// Its [`Display`](fmt::Display) output is that syntax.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TransportMapEntry {
    /// The transport; `None` (empty) for `default_transport`.
    pub transport: Option<String>,
    /// The next hop; `None` (empty) for the default, see [`Config::route`].
    pub nexthop: Option<Nexthop>,
}

impl fmt::Display for TransportMapEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.transport.as_deref().unwrap_or_default())?;
        f.write_str(":")?;
        if let Some(nexthop) = &self.nexthop {
            write!(f, "{nexthop}")?;
        }
        Ok(())
    }
}

/// What a transport does (`type = "smtp" | "discard" | "error"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Deliver with SMTP to the next hop.
    Smtp,
    /// Accept and drop the mail, reporting it as delivered.
    Discard,
    /// Return the mail as undeliverable.
    Error,
}

impl TransportKind {
    /// The configuration spelling: `smtp`, `discard` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Smtp => "smtp",
            TransportKind::Discard => "discard",
            TransportKind::Error => "error",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[transport.NAME]` table, with the defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransportConfig {
    /// `type`: what the transport does. Required, except for the built-in
    /// names, whose type it defaults to.
    pub kind: TransportKind,
    /// `destination_concurrency_limit`: the maximal number of parallel
    /// deliveries to one destination; at least 1. Default
    /// `default_destination_concurrency_limit`.
    pub destination_concurrency_limit: usize,
    /// `destination_recipient_limit`: the maximal number of recipients per
    /// delivery; at least 1. Default `default_destination_recipient_limit`.
    pub destination_recipient_limit: usize,
    /// `tls_security_level`: TLS use of an `smtp` transport (only allowed
    /// with `type = "smtp"`). Default `smtp_tls_security_level`.
    pub tls_security_level: SmtpTlsLevel,
    /// `destination_rate_delay`: Postfix's `transport_destination_rate_delay`.
    /// Default `default_destination_rate_delay`.
    pub destination_rate_delay: Duration,
    /// `destination_rate_limit`: see `default_destination_rate_limit`,
    /// which is the default.
    pub destination_rate_limit: Option<RateLimit>,
}

/// A message rate: at most `messages` per `per`, as `"N/unit"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Messages per unit (at least 1).
    pub messages: u32,
    /// The unit (not zero).
    pub per: Duration,
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.messages,
            humantime::format_duration(self.per)
        )
    }
}
