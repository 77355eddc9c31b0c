//! Configuration of the towerpost SMTP relay.
//!
//! Settings are layered with [figment]: built-in defaults, then an optional
//! TOML file, then `TOWERPOST_*` environment variables (for example
//! `TOWERPOST_MESSAGE_SIZE_LIMIT=5000`; `TOWERPOST_CONFIG` names the file and
//! is not a key). Keys are Postfix parameter names with Postfix's defaults,
//! plus a few towerpost-specific ones.
//!
//! After merging, `$name`, `${name}` and `$(name)` references in string
//! values (and in each string of a list) are expanded with the effective
//! values of other keys, as in Postfix's `main.cf` (`$$` is a literal `$`).
//! Then every value is validated into the typed [`Config`].
//!
//! Nothing falls back silently: an unknown key, a value of the wrong type or
//! out of range, or a bad reference is a [`ConfigError`] naming the key,
//! where the value came from and what was expected.
//!
//! ```toml
//! myhostname = "mail.example.com"
//! mynetworks = "127.0.0.0/8, [::1]/128 192.0.2.0/24"
//! smtpd_timeout = "5m"
//! smtpd_banner = "$myhostname ESMTP"
//!
//! relayhost = "[smarthost.example.com]:submission"
//!
//! [[listener]]
//! name = "smtp"
//! address = "0.0.0.0:25"
//! tls = "starttls"
//!
//! [transport.etrn-only]
//! type = "smtp"
//! destination_concurrency_limit = 5
//!
//! [transport_maps]
//! "customer.example" = "etrn-only:[mail.customer.example]"
//! "*" = "smtp:[fallback.example.com]"
//! ```
//!
//! The `[transport.NAME]` and `[transport_maps]` tables can only be set in
//! the file, and references are not expanded inside them (nor inside
//! `[[listener]]` tables). [`Config::route`] resolves a recipient domain to
//! a transport and next hop as Postfix's trivial-rewrite does.
//!
//! The files named by `smtpd_etrn_restrictions` (access tables, see
//! [`AccessTable`]) and `authorized_flush_users` are read by
//! [`Config::load`]: a file that cannot be read, or a bad line in it, is a
//! [`ConfigError`] naming the key, the file and the line.

mod access;
mod address_map;
mod convert;
mod env;
mod error;
mod expand;
mod flush;
mod keys;
mod restrictions;
mod sasl;
mod tls_policy;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use figment::value::Value;
use ipnet::IpNet;

pub use crate::access::{AccessAction, AccessTable};
pub use crate::address_map::AddressMap;
pub use crate::error::ConfigError;
pub use crate::flush::{UserPattern, UserRule};
pub use crate::restrictions::Restriction;
pub use crate::sasl::{Login, PasswordMap, SaslSecurityOption, SmtpdTlsLevel};
pub use crate::tls_policy::{TlsMatch, TlsPolicy, TlsPolicyMap};

use crate::env::{ENV_NAME, EnvVars};
use crate::error::{Origin, Problem, ProblemKind};
use crate::expand::{Entry, expand_all, expand_with};
use crate::keys::{
    BUILTIN_TRANSPORTS, DEFAULT_BANNER, Defaults, KEYS, domain_of, suggest, system_hostname,
};
use crate::restrictions::ListKind;

/// The prefix of the environment variables that set keys.
pub const ENV_PREFIX: &str = "TOWERPOST_";

/// The environment variable naming the configuration file. It is read by the
/// command line, not by [`Config::load`], and is not a key.
pub const CONFIG_ENV_VAR: &str = "TOWERPOST_CONFIG";

/// The validated settings. Field names are the configuration keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `myhostname`: the host name of this system, used in the banner and
    /// HELO. Default: the system host name.
    pub myhostname: String,
    /// `mydomain`: the domain of this system. Default: `myhostname` without
    /// its first label, or `localdomain` when it has a single label.
    pub mydomain: String,
    /// `mail_name`: the mail system name in the banner. Default `towerpost`.
    pub mail_name: String,
    /// `smtpd_banner`: the text after `220` in the greeting. Default
    /// `$myhostname ESMTP $mail_name`.
    pub smtpd_banner: String,
    /// `mynetworks`: trusted client networks. Default `127.0.0.0/8` and
    /// `[::1]/128`.
    pub mynetworks: Vec<IpNet>,
    /// `relay_domains`: domains this relay accepts mail for, lower-cased; a
    /// leading dot (`.example.com`) means subdomains. Default: none.
    pub relay_domains: Vec<String>,
    /// `queue_directory`: where the queue lives. Default `spool`, relative
    /// to the working directory.
    pub queue_directory: PathBuf,
    /// `queue_shard_count` (towerpost): number of queue shards, 1 to 256.
    /// Default 2.
    pub queue_shard_count: usize,
    /// `message_size_limit`: the maximal message size in bytes; 0 means
    /// unlimited. Default 10240000.
    pub message_size_limit: u64,
    /// `smtpd_recipient_limit`: the maximal number of recipients of one
    /// message. Default 1000.
    pub smtpd_recipient_limit: usize,
    /// `smtpd_timeout`: how long to wait for a client command or data.
    /// Default 300 s.
    pub smtpd_timeout: Duration,
    /// `smtpd_helo_required`: whether HELO/EHLO must come before MAIL.
    /// Default false.
    pub smtpd_helo_required: bool,
    /// `smtpd_hard_error_limit`: errors after which the connection is closed.
    /// Default 20.
    pub smtpd_hard_error_limit: usize,
    /// `smtpd_soft_error_limit`: errors after which each reply is delayed by
    /// `smtpd_error_sleep_time`. Default 10.
    pub smtpd_soft_error_limit: usize,
    /// `smtpd_error_sleep_time`: the delay once the soft error limit is
    /// reached. Default 1 s.
    pub smtpd_error_sleep_time: Duration,
    /// `smtpd_junk_command_limit`: NOOP/RSET/VRFY/ETRN commands allowed
    /// before they count as errors. Default 100.
    pub smtpd_junk_command_limit: usize,
    /// `smtpd_forbid_bare_newline`: what to do with a bare LF. Default
    /// [`BareNewline::Normalize`]; Postfix's `no` is refused.
    pub smtpd_forbid_bare_newline: BareNewline,
    /// `smtpd_forbid_unauth_pipelining`: whether to reject clients that send
    /// commands ahead without PIPELINING. Default true.
    pub smtpd_forbid_unauth_pipelining: bool,
    /// `smtpd_command_line_limit` (towerpost): the maximal command line
    /// length in bytes including CRLF; at least 512 (RFC 5321). Default 512.
    pub smtpd_command_line_limit: usize,
    /// `smtpd_text_line_limit` (towerpost): the maximal length of a message
    /// text line in bytes including CRLF; at least 1000 (RFC 5321). Default
    /// 1000.
    pub smtpd_text_line_limit: usize,
    /// `smtpd_shutdown_grace_time` (towerpost): how long in-flight
    /// transactions may finish after SIGTERM. Default 30 s.
    pub smtpd_shutdown_grace_time: Duration,
    /// `smtpd_tls_cert_file`: the PEM certificate chain. Default unset.
    pub smtpd_tls_cert_file: Option<PathBuf>,
    /// `smtpd_tls_key_file`: the PEM private key. Default unset.
    pub smtpd_tls_key_file: Option<PathBuf>,
    /// `listener` (`[[listener]]` tables): the sockets to listen on. Default:
    /// one listener `smtp` on `127.0.0.1:2525` without TLS. Names and
    /// addresses (except port 0) are unique; there is at least one.
    pub listener: Vec<Listener>,
    /// `queue_run_delay`: the time between scans of the deferred queue.
    /// Greater than zero. Default 300 s.
    pub queue_run_delay: Duration,
    /// `minimal_backoff_time`: the minimal time between attempts to deliver
    /// a deferred message. At most `maximal_backoff_time`. Default 300 s.
    pub minimal_backoff_time: Duration,
    /// `maximal_backoff_time`: the maximal time between attempts to deliver
    /// a deferred message. Default 4000 s.
    pub maximal_backoff_time: Duration,
    /// `maximal_queue_lifetime`: how long a message may stay queued before
    /// it is returned as undeliverable; zero means a single delivery attempt.
    /// Default 5 days.
    pub maximal_queue_lifetime: Duration,
    /// `bounce_queue_lifetime`: the same for bounce messages (null sender).
    /// Default 5 days.
    pub bounce_queue_lifetime: Duration,
    /// `delay_warning_time`: after how long the sender is told that a message
    /// is delayed; zero means never. Default 0 (no warnings).
    pub delay_warning_time: Duration,
    /// `smtp_connect_timeout`: the time limit for connecting to a remote
    /// server. Greater than zero. Default 30 s.
    pub smtp_connect_timeout: Duration,
    /// `smtp_helo_timeout`: the time limit for the greeting and the reply to
    /// HELO/EHLO. Greater than zero. Default 300 s.
    pub smtp_helo_timeout: Duration,
    /// `smtp_mail_timeout`: the time limit for the reply to MAIL FROM.
    /// Greater than zero. Default 300 s.
    pub smtp_mail_timeout: Duration,
    /// `smtp_rcpt_timeout`: the time limit for the reply to RCPT TO. Greater
    /// than zero. Default 300 s.
    pub smtp_rcpt_timeout: Duration,
    /// `smtp_data_init_timeout`: the time limit for the reply to DATA.
    /// Greater than zero. Default 120 s.
    pub smtp_data_init_timeout: Duration,
    /// `smtp_data_xfer_timeout`: the time limit for sending message content.
    /// Greater than zero. Default 180 s.
    pub smtp_data_xfer_timeout: Duration,
    /// `smtp_data_done_timeout`: the time limit for the reply to the final
    /// `.`. Greater than zero. Default 600 s.
    pub smtp_data_done_timeout: Duration,
    /// `smtp_connection_cache_time_limit`: how long an unused connection to a
    /// remote server is kept open for reuse. Greater than zero. Default 2 s.
    pub smtp_connection_cache_time_limit: Duration,
    /// `qmgr_message_active_limit`: the maximal number of messages in the
    /// active queue. At least 1. Default 20000.
    pub qmgr_message_active_limit: usize,
    /// `default_destination_concurrency_limit`: the default maximal number of
    /// parallel deliveries to one destination, for transports that do not
    /// set `destination_concurrency_limit`. At least 1. Default 20.
    pub default_destination_concurrency_limit: usize,
    /// `initial_destination_concurrency`: the number of parallel
    /// deliveries a destination starts with; it grows by one with each
    /// delivery that reaches the next hop, up to the destination
    /// concurrency limit, and shrinks by one with each failure to connect.
    /// At least 1. Default 5.
    pub initial_destination_concurrency: usize,
    /// `default_destination_concurrency_failed_cohort_limit`: after this
    /// many failed pseudo-cohorts (a window's worth of failed connections)
    /// with no success between, a destination is dead: its mail is deferred
    /// without attempts for `minimal_backoff_time`. 0: never. Default 1.
    pub default_destination_concurrency_failed_cohort_limit: u32,
    /// `default_destination_rate_delay`: the pause after one delivery to a
    /// destination by one transport ends before the next starts (Postfix's
    /// name and meaning; a value above zero also limits that destination to
    /// one delivery at a time).
    /// Default 0: no pause.
    pub default_destination_rate_delay: Duration,
    /// `default_destination_rate_limit` (towerpost): at most this many
    /// messages per time unit to one destination by one transport, as
    /// `"N/unit"` such as `"600/1h"` (one every unit/N, evenly spaced), so
    /// a relay stays below a big receiver's throttling. Default `0`:
    /// none. Route such a receiver to a transport of its own in
    /// `transport_maps` to give it its own limit.
    pub default_destination_rate_limit: Option<RateLimit>,
    /// `default_destination_recipient_limit`: the default maximal number of
    /// recipients per delivery, for transports that do not set
    /// `destination_recipient_limit`. At least 1. Default 50.
    pub default_destination_recipient_limit: usize,
    /// `bounce_size_limit`: the maximal amount of original message text, in
    /// bytes, returned in a non-delivery notification. Default 50000.
    pub bounce_size_limit: u64,
    /// `soft_bounce`: a safety net that keeps mail queued instead of
    /// returning it: permanent (5xx) delivery errors are treated as temporary
    /// (4xx). Default false.
    pub soft_bounce: bool,
    /// `disable_mime_output_conversion`: send 8-bit content unchanged to a
    /// next hop that does not offer 8BITMIME, instead of converting it to
    /// quoted-printable (RFC 6152 §3). Default false.
    pub disable_mime_output_conversion: bool,
    /// `relayhost`: the next hop for mail that `transport_maps` does not
    /// route, such as `[relay.example.com]:587`. Default unset (`""`): mail
    /// goes to the MX hosts of the recipient domain.
    pub relayhost: Option<Nexthop>,
    /// `default_transport`: the transport for mail that `transport_maps` does
    /// not route to a transport. A declared transport. Default `smtp`.
    pub default_transport: String,
    /// `smtp_tls_security_level`: TLS use of the SMTP client. Default
    /// [`SmtpTlsLevel::May`] (as Postfix 3.11); `dane` and `fingerprint`
    /// are not supported.
    pub smtp_tls_security_level: SmtpTlsLevel,
    /// `smtp_tls_policy_maps` (a `[smtp_tls_policy_maps]` table):
    /// per-destination TLS policy, which wins over the transport's level
    /// and over MTA-STS ([`TlsPolicyMap`]). Default: none. Only settable
    /// in the file.
    pub smtp_tls_policy_maps: TlsPolicyMap,
    /// `smtp_tls_CAfile`: a PEM file of CA certificates the SMTP client
    /// trusts in addition to the web PKI roots, for `verify`, `secure` and
    /// MTA-STS (a private next hop's CA). Default unset.
    pub smtp_tls_cafile: Option<PathBuf>,
    /// `smtp_mta_sts_enable`: honour the MTA-STS policies (RFC 8461) that
    /// recipient domains publish, for MX-lookup destinations without an
    /// `smtp_tls_policy_maps` entry. Default true.
    pub smtp_mta_sts_enable: bool,
    /// `defer_transports`: transports that do not deliver until the queue is
    /// flushed explicitly (such as on ETRN). Declared transports. Default:
    /// none.
    pub defer_transports: Vec<String>,
    /// `fast_flush_domains`: the domains whose deferred mail the fast flush
    /// service indexes, so that ETRN and `sendmail -qR` can flush it; see
    /// [`Config::fast_flush_eligible`]. Lower-cased domains without a
    /// trailing dot (each also matches its subdomains), `.domain` (subdomains
    /// only) and address literals such as `[192.0.2.1]`. Default
    /// `$relay_domains` (so none by default, as Postfix 3.0 and later).
    pub fast_flush_domains: Vec<String>,
    /// `fast_flush_refresh_time`: after how long a fast flush logfile with
    /// no delivery requests is refreshed. Greater than zero. Default 12 h.
    pub fast_flush_refresh_time: Duration,
    /// `fast_flush_purge_time`: after how long an unused fast flush logfile
    /// is deleted. Greater than zero. Default 7 days.
    pub fast_flush_purge_time: Duration,
    /// `smtpd_etrn_restrictions`: the restrictions applied to ETRN, in
    /// order, in Postfix syntax (`permit_mynetworks, check_etrn_access
    /// /etc/x, reject`). Access tables are read when the configuration is
    /// loaded. Default: none (every client may use ETRN).
    pub smtpd_etrn_restrictions: Vec<Restriction>,
    /// `authorized_flush_users`: who may flush the queue (`postqueue -f`,
    /// `-s`, `-i`); see [`Config::flush_user_allowed`]. User names,
    /// `static:anyone` and `/file/name` (read when the configuration is
    /// loaded), each possibly negated with `!`. Default `static:anyone`.
    pub authorized_flush_users: Vec<UserRule>,
    /// `transport_maps` (a `[transport_maps]` table): routes by recipient
    /// domain, as in Postfix's transport(5). Keys are lower-cased patterns:
    /// a domain, `.domain` (its subdomains only) or `*` (any domain); values
    /// are `transport:nexthop` with either part empty. See [`Config::route`].
    /// Default: none. Only settable in the file.
    pub transport_maps: BTreeMap<String, Route>,
    /// `transport` (`[transport.NAME]` tables): the delivery transports, by
    /// name, with effective limits. The built-in `smtp`, `relay` (type
    /// smtp), `discard` and `error` are always present and can be changed by
    /// a table of the same name. Only settable in the file.
    pub transport: BTreeMap<String, TransportConfig>,
    /// `smtpd_client_connection_count_limit`: the maximal number of
    /// simultaneous connections from one client; 0 means no limit. Default
    /// 50.
    pub smtpd_client_connection_count_limit: usize,
    /// `smtpd_client_connection_rate_limit`: the maximal number of
    /// connections from one client per `anvil_rate_time_unit`; 0 means no
    /// limit. Default 0.
    pub smtpd_client_connection_rate_limit: u32,
    /// `smtpd_client_message_rate_limit`: the maximal number of MAIL FROM
    /// requests from one client per `anvil_rate_time_unit`; 0 means no
    /// limit. Default 0.
    pub smtpd_client_message_rate_limit: u32,
    /// `smtpd_client_recipient_rate_limit`: the maximal number of RCPT TO
    /// and VRFY requests from one client per `anvil_rate_time_unit`; 0 means
    /// no limit. Default 0.
    pub smtpd_client_recipient_rate_limit: u32,
    /// `smtpd_client_new_tls_session_rate_limit`: the maximal number of new
    /// (uncached) TLS sessions of one client per `anvil_rate_time_unit`; 0
    /// means no limit. Default 0.
    pub smtpd_client_new_tls_session_rate_limit: u32,
    /// `smtpd_client_auth_rate_limit`: the maximal number of AUTH commands
    /// from one client per `anvil_rate_time_unit`; 0 means no limit.
    /// Default 0.
    pub smtpd_client_auth_rate_limit: u32,
    /// `anvil_rate_time_unit`: the length of the fixed window of the client
    /// rate limits. Greater than zero. Default 60 s.
    pub anvil_rate_time_unit: Duration,
    /// `smtpd_client_event_limit_exceptions`: clients exempt from the
    /// connection count and rate limits, in the syntax of `mynetworks`.
    /// Default `$mynetworks`.
    pub smtpd_client_event_limit_exceptions: Vec<IpNet>,
    /// `smtpd_client_ipv4_prefix_length`: IPv4 clients are counted together
    /// by network of this prefix length, 1 to 32. Default 32 (each address
    /// on its own).
    pub smtpd_client_ipv4_prefix_length: u8,
    /// `smtpd_client_ipv6_prefix_length`: IPv6 clients are counted together
    /// by network of this prefix length, 1 to 128. Default 84.
    pub smtpd_client_ipv6_prefix_length: u8,
    /// `smtpd_client_restrictions`: restrictions on the client, applied at
    /// RCPT (`smtpd_delay_reject`). Default: none.
    pub smtpd_client_restrictions: Vec<Restriction>,
    /// `smtpd_helo_restrictions`: restrictions on the HELO/EHLO name,
    /// applied at RCPT. Default: none.
    pub smtpd_helo_restrictions: Vec<Restriction>,
    /// `smtpd_sender_restrictions`: restrictions on the MAIL FROM address,
    /// applied at RCPT. Default: none.
    pub smtpd_sender_restrictions: Vec<Restriction>,
    /// `smtpd_relay_restrictions`: the relay decision at RCPT, before
    /// `smtpd_recipient_restrictions`. Default `permit_mynetworks,
    /// permit_sasl_authenticated, defer_unauth_destination` (Postfix 2.10
    /// and later).
    pub smtpd_relay_restrictions: Vec<Restriction>,
    /// `smtpd_recipient_restrictions`: restrictions on RCPT TO. Default:
    /// none. With `smtpd_relay_restrictions`, one of the two must refuse
    /// unauthorized relaying (Postfix's rule), or the configuration is
    /// refused.
    pub smtpd_recipient_restrictions: Vec<Restriction>,
    /// `smtpd_delay_reject`: apply client, HELO and sender restrictions at
    /// RCPT. Only `yes` (the default) is supported.
    pub smtpd_delay_reject: bool,
    /// `smtpd_reject_unlisted_recipient`: refuse recipients of relay
    /// domains that `relay_recipient_maps` does not list, even without
    /// `reject_unlisted_recipient` in a list. Default true.
    pub smtpd_reject_unlisted_recipient: bool,
    /// `relay_recipient_maps`: the valid recipients of `relay_domains`
    /// ([`AddressMap`]); unset means every address is valid. Default unset.
    pub relay_recipient_maps: Option<AddressMap>,
    /// `smtpd_sender_login_maps`: which SASL logins own which sender
    /// addresses ([`AddressMap`], the value a list of logins), for
    /// `reject_sender_login_mismatch`. Default unset.
    pub smtpd_sender_login_maps: Option<AddressMap>,
    /// `unknown_address_reject_code`: the reply code when
    /// `reject_unknown_sender_domain` or `reject_unknown_recipient_domain`
    /// finds that a domain does not exist. Default 450 (as Postfix; set
    /// 550 once the setup is trusted).
    pub unknown_address_reject_code: u16,
    /// `smtpd_sasl_auth_enable`: offer and accept AUTH (RFC 4954). Default
    /// false; usually set per listener.
    pub smtpd_sasl_auth_enable: bool,
    /// `smtpd_tls_auth_only`: offer and accept AUTH only under TLS.
    /// Default **true** (Postfix: no): PLAIN and LOGIN send the password
    /// as it is, so plaintext AUTH must be asked for explicitly, on a
    /// listener whose traffic never leaves the host. Implied by
    /// `smtpd_tls_security_level = encrypt`.
    pub smtpd_tls_auth_only: bool,
    /// `smtpd_tls_security_level`: `none`, `may` or `encrypt` (every
    /// command but EHLO, HELO, STARTTLS, NOOP and QUIT needs TLS first).
    /// Default `none`; a `starttls` listener is `may` unless set.
    pub smtpd_tls_security_level: SmtpdTlsLevel,
    /// `smtpd_sasl_password_file` (towerpost): the file of users and
    /// argon2id password hashes that AUTH checks, managed by `towerpost
    /// passwd`. Default unset; required when AUTH is enabled anywhere.
    pub smtpd_sasl_password_file: Option<PathBuf>,
    /// `smtpd_tls_chain_files`: PEM files, each a private key with its
    /// certificate chain, chosen by SNI; the first is the default. Used
    /// instead of `smtpd_tls_cert_file`/`smtpd_tls_key_file`. Default none.
    pub smtpd_tls_chain_files: Vec<PathBuf>,
    /// `smtp_sasl_auth_enable`: the SMTP client authenticates to next hops
    /// that `smtp_sasl_password_maps` has a login for. Default false.
    pub smtp_sasl_auth_enable: bool,
    /// `smtp_sasl_password_maps`: logins by next hop ([`PasswordMap`]).
    /// Default unset.
    pub smtp_sasl_password_maps: Option<PasswordMap>,
    /// `smtp_sasl_security_options`: what the SMTP client's AUTH must
    /// avoid without TLS. Default `noplaintext, noanonymous` (as Postfix):
    /// no password over an unencrypted connection.
    pub smtp_sasl_security_options: Vec<SaslSecurityOption>,
    /// `smtp_sasl_tls_security_options`: the same under TLS. Default
    /// `noanonymous` (Postfix's default is `$smtp_sasl_security_options`,
    /// which with PLAIN and LOGIN would never authenticate).
    pub smtp_sasl_tls_security_options: Vec<SaslSecurityOption>,
}

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

/// Where mail goes next: a host or domain and an optional port, in Postfix
/// syntax (`example.com`, `example.com:587`, `[mail.example.com]`,
/// `[192.0.2.1]:25`, `[2001:db8::1]:25`).
///
/// Its [`Display`](fmt::Display) output is that syntax, with the port as a
/// number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nexthop {
    /// A domain or host name (lower-case, without a trailing dot), or an IP
    /// address (only when `mx_lookup` is false; IPv6 without brackets or
    /// `ipv6:` prefix).
    pub host: String,
    /// The TCP port; `None` for the default (25 for SMTP). Service names are
    /// resolved: `smtp` 25, `submission` 587, `smtps` and `submissions` 465.
    pub port: Option<u16>,
    /// Whether to look up the MX records of `host` (written without
    /// brackets) rather than connect to `host` itself (written in brackets).
    pub mx_lookup: bool,
}

impl std::str::FromStr for Nexthop {
    type Err = String;

    /// Parses the syntax of `relayhost` and `transport_maps` next hops.
    fn from_str(s: &str) -> Result<Nexthop, String> {
        convert::nexthop(s)
    }
}

impl fmt::Display for Nexthop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mx_lookup {
            f.write_str(&self.host)?;
        } else {
            write!(f, "[{}]", self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// One `transport_maps` entry: `transport:nexthop`, either part empty.
///
/// Its [`Display`](fmt::Display) output is that syntax.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Route {
    /// The transport; `None` (empty) for `default_transport`.
    pub transport: Option<String>,
    /// The next hop; `None` (empty) for the default, see [`Config::route`].
    pub nexthop: Option<Nexthop>,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.transport.as_deref().unwrap_or_default())?;
        f.write_str(":")?;
        if let Some(nexthop) = &self.nexthop {
            write!(f, "{nexthop}")?;
        }
        Ok(())
    }
}

/// The result of [`Config::route`]: the transport and next hop for a
/// recipient domain.
///
/// Its [`Display`](fmt::Display) output is `transport:nexthop`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolvedRoute {
    /// The name of the transport, a key of [`Config::transport`].
    pub transport: String,
    /// Where to deliver.
    pub nexthop: Nexthop,
}

impl fmt::Display for ResolvedRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.nexthop)
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

/// `"N/unit"`, or `0` for none, as `config show` writes it.
fn rate_text(rate: Option<&RateLimit>) -> String {
    rate.map_or_else(|| "0".to_owned(), RateLimit::to_string)
}

impl Default for Config {
    /// The built-in defaults, with the system host name.
    fn default() -> Self {
        Config::builtin(system_hostname())
    }
}

impl Config {
    /// Load defaults, then the file (if given), then the environment
    /// (`TOWERPOST_*` variables of the process); expand references; validate.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let vars = std::env::vars_os().filter_map(|(name, value)| {
            Some((
                name.into_string().ok()?,
                value.to_string_lossy().into_owned(),
            ))
        });
        load(file, EnvVars::new(vars))
    }

    /// Same as [`Config::load`] but with an explicit environment (list of
    /// (name, value)) instead of the process environment — for tests.
    pub fn load_with_env(file: Option<&Path>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        load(file, EnvVars::new(env.iter().copied()))
    }

    /// Effective settings that differ from the built-in defaults, as (key,
    /// value-rendered-as-TOML) pairs sorted by key (like `postconf -n`).
    ///
    /// Defaults that derive from other keys are taken with this
    /// configuration's values: with `myhostname = "mx.example.com"`,
    /// `mydomain = "example.com"` and the default banner are not listed.
    pub fn non_default_settings(&self) -> Vec<(String, String)> {
        let mut defaults = Config::builtin(system_hostname());
        defaults.mydomain = domain_of(&self.myhostname);
        defaults.smtpd_banner =
            expand_with(DEFAULT_BANNER, |k| self.setting(k)?.plain()).unwrap_or_default();
        defaults.fast_flush_domains =
            flush::flush_domains(&Value::from(self.relay_domains.join(", "))).unwrap_or_default();
        defaults.smtpd_client_event_limit_exceptions = self.mynetworks.clone();
        let defaults: BTreeMap<&str, String> = defaults
            .settings()
            .into_iter()
            .map(|(k, v)| (k, v.toml()))
            .collect();
        let mut out: Vec<(String, String)> = self
            .settings()
            .into_iter()
            .map(|(k, v)| (k, v.toml()))
            .filter(|(k, v)| defaults.get(k) != Some(v))
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        out.sort();
        out
    }

    /// The effective smtpd settings of `listener`: its overrides, else the
    /// top-level values. `smtpd_tls_security_level = encrypt` implies
    /// `smtpd_tls_auth_only`; an implicit-TLS listener is always
    /// encrypted.
    pub fn smtpd_policy(&self, listener: &Listener) -> SmtpdPolicy {
        let o = &listener.overrides;
        let pick = |own: &Option<Vec<Restriction>>, top: &Vec<Restriction>| {
            own.clone().unwrap_or_else(|| top.clone())
        };
        let tls_security_level = o
            .smtpd_tls_security_level
            .unwrap_or(self.smtpd_tls_security_level);
        SmtpdPolicy {
            sasl_auth_enable: o
                .smtpd_sasl_auth_enable
                .unwrap_or(self.smtpd_sasl_auth_enable),
            tls_auth_only: o.smtpd_tls_auth_only.unwrap_or(self.smtpd_tls_auth_only)
                || tls_security_level == SmtpdTlsLevel::Encrypt,
            tls_security_level,
            client_restrictions: pick(
                &o.smtpd_client_restrictions,
                &self.smtpd_client_restrictions,
            ),
            helo_restrictions: pick(&o.smtpd_helo_restrictions, &self.smtpd_helo_restrictions),
            sender_restrictions: pick(
                &o.smtpd_sender_restrictions,
                &self.smtpd_sender_restrictions,
            ),
            relay_restrictions: pick(&o.smtpd_relay_restrictions, &self.smtpd_relay_restrictions),
            recipient_restrictions: pick(
                &o.smtpd_recipient_restrictions,
                &self.smtpd_recipient_restrictions,
            ),
        }
    }

    /// Postfix-style resolution of a recipient domain: `transport_maps`
    /// (exact domain, then `.parent` entries from the closest parent up, then
    /// `*`), then `relayhost` for the default transport, then
    /// `default_transport` with the recipient domain (MX lookup) as next hop.
    ///
    /// The domain is matched case-insensitively, ignoring a trailing dot. As
    /// in transport(5), an entry with a transport but no next hop delivers to
    /// the recipient domain (MX lookup, not `relayhost`); an entry with a
    /// next hop but no transport uses `default_transport`; an entry with
    /// neither (`":"`) stops the search and changes nothing, so `relayhost`
    /// applies as if no entry had matched.
    pub fn route(&self, domain: &str) -> ResolvedRoute {
        let domain = domain.strip_suffix('.').unwrap_or(domain).to_lowercase();
        let maps = &self.transport_maps;
        let entry = maps
            .get(&domain)
            .or_else(|| {
                domain
                    .match_indices('.')
                    .find_map(|(i, _)| maps.get(&domain[i..]))
            })
            .or_else(|| maps.get("*"));
        let (transport, nexthop) = match entry {
            Some(Route {
                transport: None,
                nexthop: None,
            })
            | None => (None, self.relayhost.clone()),
            Some(route) => (route.transport.clone(), route.nexthop.clone()),
        };
        ResolvedRoute {
            transport: transport.unwrap_or_else(|| self.default_transport.clone()),
            nexthop: nexthop.unwrap_or(Nexthop {
                host: domain,
                port: None,
                mx_lookup: true,
            }),
        }
    }

    /// A transport of type `kind` with this configuration's defaults.
    fn default_transport_config(&self, kind: TransportKind) -> TransportConfig {
        TransportConfig {
            kind,
            destination_concurrency_limit: self.default_destination_concurrency_limit,
            destination_recipient_limit: self.default_destination_recipient_limit,
            tls_security_level: self.smtp_tls_security_level,
            destination_rate_delay: self.default_destination_rate_delay,
            destination_rate_limit: self.default_destination_rate_limit,
        }
    }

    /// The built-in transports with this configuration's defaults.
    fn builtin_transports(&self) -> BTreeMap<String, TransportConfig> {
        BUILTIN_TRANSPORTS
            .iter()
            .filter_map(|(name, kind)| {
                let kind = convert::transport_kind(&Value::from(*kind)).ok()?;
                Some(((*name).to_owned(), self.default_transport_config(kind)))
            })
            .collect()
    }

    /// The built-in defaults for a given host name.
    fn builtin(myhostname: String) -> Config {
        use crate::keys::*;
        let mut config = Config {
            mydomain: domain_of(&myhostname),
            myhostname,
            mail_name: DEFAULT_MAIL_NAME.to_owned(),
            smtpd_banner: String::new(),
            mynetworks: Vec::new(),
            relay_domains: Vec::new(),
            queue_directory: PathBuf::from(DEFAULT_QUEUE_DIRECTORY),
            queue_shard_count: DEFAULT_QUEUE_SHARD_COUNT,
            message_size_limit: DEFAULT_MESSAGE_SIZE_LIMIT,
            smtpd_recipient_limit: DEFAULT_RECIPIENT_LIMIT,
            smtpd_timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            smtpd_helo_required: false,
            smtpd_hard_error_limit: DEFAULT_HARD_ERROR_LIMIT,
            smtpd_soft_error_limit: DEFAULT_SOFT_ERROR_LIMIT,
            smtpd_error_sleep_time: Duration::from_secs(DEFAULT_ERROR_SLEEP_SECS),
            smtpd_junk_command_limit: DEFAULT_JUNK_COMMAND_LIMIT,
            smtpd_forbid_bare_newline: BareNewline::Normalize,
            smtpd_forbid_unauth_pipelining: true,
            smtpd_command_line_limit: MIN_COMMAND_LINE_LIMIT,
            smtpd_text_line_limit: MIN_TEXT_LINE_LIMIT,
            smtpd_shutdown_grace_time: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECS),
            smtpd_tls_cert_file: None,
            smtpd_tls_key_file: None,
            listener: vec![Listener {
                name: DEFAULT_LISTENER.0.to_owned(),
                address: SocketAddr::from(([127, 0, 0, 1], 2525)),
                tls: TlsMode::None,
                overrides: ListenerOverrides::default(),
            }],
            queue_run_delay: Duration::from_secs(DEFAULT_QUEUE_RUN_DELAY_SECS),
            minimal_backoff_time: Duration::from_secs(DEFAULT_MINIMAL_BACKOFF_SECS),
            maximal_backoff_time: Duration::from_secs(DEFAULT_MAXIMAL_BACKOFF_SECS),
            maximal_queue_lifetime: Duration::from_secs(DEFAULT_QUEUE_LIFETIME_SECS),
            bounce_queue_lifetime: Duration::from_secs(DEFAULT_QUEUE_LIFETIME_SECS),
            delay_warning_time: Duration::from_secs(DEFAULT_DELAY_WARNING_SECS),
            smtp_connect_timeout: Duration::from_secs(DEFAULT_SMTP_CONNECT_TIMEOUT_SECS),
            smtp_helo_timeout: Duration::from_secs(DEFAULT_SMTP_COMMAND_TIMEOUT_SECS),
            smtp_mail_timeout: Duration::from_secs(DEFAULT_SMTP_COMMAND_TIMEOUT_SECS),
            smtp_rcpt_timeout: Duration::from_secs(DEFAULT_SMTP_COMMAND_TIMEOUT_SECS),
            smtp_data_init_timeout: Duration::from_secs(DEFAULT_SMTP_DATA_INIT_TIMEOUT_SECS),
            smtp_data_xfer_timeout: Duration::from_secs(DEFAULT_SMTP_DATA_XFER_TIMEOUT_SECS),
            smtp_data_done_timeout: Duration::from_secs(DEFAULT_SMTP_DATA_DONE_TIMEOUT_SECS),
            smtp_connection_cache_time_limit: Duration::from_secs(
                DEFAULT_SMTP_CACHE_TIME_LIMIT_SECS,
            ),
            qmgr_message_active_limit: DEFAULT_MESSAGE_ACTIVE_LIMIT,
            default_destination_concurrency_limit: DEFAULT_DESTINATION_CONCURRENCY_LIMIT,
            default_destination_recipient_limit: DEFAULT_DESTINATION_RECIPIENT_LIMIT,
            default_destination_rate_delay: Duration::ZERO,
            default_destination_rate_limit: None,
            initial_destination_concurrency: 5,
            default_destination_concurrency_failed_cohort_limit: 1,
            bounce_size_limit: DEFAULT_BOUNCE_SIZE_LIMIT,
            soft_bounce: false,
            disable_mime_output_conversion: false,
            relayhost: None,
            default_transport: DEFAULT_TRANSPORT.to_owned(),
            smtp_tls_security_level: SmtpTlsLevel::default(),
            smtp_tls_policy_maps: TlsPolicyMap::default(),
            smtp_tls_cafile: None,
            smtp_mta_sts_enable: true,
            defer_transports: Vec::new(),
            fast_flush_domains: Vec::new(),
            fast_flush_refresh_time: Duration::from_secs(DEFAULT_FAST_FLUSH_REFRESH_SECS),
            fast_flush_purge_time: Duration::from_secs(DEFAULT_FAST_FLUSH_PURGE_SECS),
            smtpd_etrn_restrictions: Vec::new(),
            authorized_flush_users: vec![UserRule {
                exclude: false,
                pattern: UserPattern::Anyone,
            }],
            transport_maps: BTreeMap::new(),
            transport: BTreeMap::new(),
            smtpd_client_connection_count_limit: DEFAULT_CLIENT_CONNECTION_COUNT_LIMIT,
            smtpd_client_connection_rate_limit: DEFAULT_CLIENT_RATE_LIMIT,
            smtpd_client_message_rate_limit: DEFAULT_CLIENT_RATE_LIMIT,
            smtpd_client_recipient_rate_limit: DEFAULT_CLIENT_RATE_LIMIT,
            smtpd_client_new_tls_session_rate_limit: DEFAULT_CLIENT_RATE_LIMIT,
            smtpd_client_auth_rate_limit: DEFAULT_CLIENT_RATE_LIMIT,
            anvil_rate_time_unit: Duration::from_secs(DEFAULT_ANVIL_RATE_TIME_UNIT_SECS),
            smtpd_client_event_limit_exceptions: Vec::new(),
            smtpd_client_ipv4_prefix_length: DEFAULT_CLIENT_IPV4_PREFIX_LENGTH,
            smtpd_client_ipv6_prefix_length: DEFAULT_CLIENT_IPV6_PREFIX_LENGTH,
            smtpd_client_restrictions: Vec::new(),
            smtpd_helo_restrictions: Vec::new(),
            smtpd_sender_restrictions: Vec::new(),
            smtpd_relay_restrictions: vec![
                Restriction::PermitMynetworks,
                Restriction::PermitSaslAuthenticated,
                Restriction::DeferUnauthDestination,
            ],
            smtpd_recipient_restrictions: Vec::new(),
            smtpd_delay_reject: true,
            smtpd_reject_unlisted_recipient: true,
            relay_recipient_maps: None,
            smtpd_sender_login_maps: None,
            unknown_address_reject_code: DEFAULT_UNKNOWN_ADDRESS_REJECT_CODE,
            smtpd_sasl_auth_enable: false,
            smtpd_tls_auth_only: true,
            smtpd_tls_security_level: SmtpdTlsLevel::None,
            smtpd_sasl_password_file: None,
            smtpd_tls_chain_files: Vec::new(),
            smtp_sasl_auth_enable: false,
            smtp_sasl_password_maps: None,
            smtp_sasl_security_options: vec![
                SaslSecurityOption::NoPlaintext,
                SaslSecurityOption::NoAnonymous,
            ],
            smtp_sasl_tls_security_options: vec![SaslSecurityOption::NoAnonymous],
        };
        config.transport = config.builtin_transports();
        config.mynetworks = DEFAULT_MYNETWORKS
            .iter()
            .filter_map(|n| convert::networks(&Value::from(*n)).ok())
            .flatten()
            .collect();
        config.smtpd_client_event_limit_exceptions = config.mynetworks.clone();
        config.smtpd_banner =
            expand_with(DEFAULT_BANNER, |k| config.setting(k)?.plain()).unwrap_or_default();
        config
    }

    /// The transports that differ from the built-in ones, as an inline TOML
    /// table; only the keys that differ from this configuration's defaults
    /// are given.
    fn render_transports(&self, transports: &BTreeMap<String, TransportConfig>) -> String {
        let builtin = self.builtin_transports();
        inline_table(
            transports
                .iter()
                .filter(|(name, transport)| builtin.get(*name) != Some(*transport))
                .map(|(name, transport)| {
                    let defaults = self.default_transport_config(transport.kind);
                    let mut fields = vec![("type", toml_string(transport.kind.as_str()))];
                    if transport.destination_concurrency_limit
                        != defaults.destination_concurrency_limit
                    {
                        fields.push((
                            "destination_concurrency_limit",
                            transport.destination_concurrency_limit.to_string(),
                        ));
                    }
                    if transport.destination_recipient_limit != defaults.destination_recipient_limit
                    {
                        fields.push((
                            "destination_recipient_limit",
                            transport.destination_recipient_limit.to_string(),
                        ));
                    }
                    if transport.tls_security_level != defaults.tls_security_level {
                        fields.push((
                            "tls_security_level",
                            toml_string(transport.tls_security_level.as_str()),
                        ));
                    }
                    if transport.destination_rate_delay != defaults.destination_rate_delay {
                        fields.push((
                            "destination_rate_delay",
                            toml_string(
                                &humantime::format_duration(transport.destination_rate_delay)
                                    .to_string(),
                            ),
                        ));
                    }
                    if transport.destination_rate_limit != defaults.destination_rate_limit {
                        fields.push((
                            "destination_rate_limit",
                            toml_string(&rate_text(transport.destination_rate_limit.as_ref())),
                        ));
                    }
                    (name.as_str(), inline_table(fields))
                }),
        )
    }

    fn setting(&self, key: &str) -> Option<Setting<'_>> {
        self.settings()
            .into_iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    /// Every setting by key, in key order.
    fn settings(&self) -> Vec<(&'static str, Setting<'_>)> {
        // Destructured so that a new field cannot be forgotten here.
        let Config {
            myhostname,
            mydomain,
            mail_name,
            smtpd_banner,
            mynetworks,
            relay_domains,
            queue_directory,
            queue_shard_count,
            message_size_limit,
            smtpd_recipient_limit,
            smtpd_timeout,
            smtpd_helo_required,
            smtpd_hard_error_limit,
            smtpd_soft_error_limit,
            smtpd_error_sleep_time,
            smtpd_junk_command_limit,
            smtpd_forbid_bare_newline,
            smtpd_forbid_unauth_pipelining,
            smtpd_command_line_limit,
            smtpd_text_line_limit,
            smtpd_shutdown_grace_time,
            smtpd_tls_cert_file,
            smtpd_tls_key_file,
            listener,
            queue_run_delay,
            minimal_backoff_time,
            maximal_backoff_time,
            maximal_queue_lifetime,
            bounce_queue_lifetime,
            delay_warning_time,
            smtp_connect_timeout,
            smtp_helo_timeout,
            smtp_mail_timeout,
            smtp_rcpt_timeout,
            smtp_data_init_timeout,
            smtp_data_xfer_timeout,
            smtp_data_done_timeout,
            smtp_connection_cache_time_limit,
            qmgr_message_active_limit,
            default_destination_concurrency_limit,
            default_destination_recipient_limit,
            default_destination_rate_delay,
            default_destination_rate_limit,
            initial_destination_concurrency,
            default_destination_concurrency_failed_cohort_limit,
            bounce_size_limit,
            soft_bounce,
            disable_mime_output_conversion,
            relayhost,
            default_transport,
            smtp_tls_security_level,
            smtp_tls_policy_maps,
            smtp_tls_cafile,
            smtp_mta_sts_enable,
            defer_transports,
            fast_flush_domains,
            fast_flush_refresh_time,
            fast_flush_purge_time,
            smtpd_etrn_restrictions,
            authorized_flush_users,
            transport_maps,
            transport,
            smtpd_client_connection_count_limit,
            smtpd_client_connection_rate_limit,
            smtpd_client_message_rate_limit,
            smtpd_client_recipient_rate_limit,
            smtpd_client_new_tls_session_rate_limit,
            smtpd_client_auth_rate_limit,
            anvil_rate_time_unit,
            smtpd_client_event_limit_exceptions,
            smtpd_client_ipv4_prefix_length,
            smtpd_client_ipv6_prefix_length,
            smtpd_client_restrictions,
            smtpd_helo_restrictions,
            smtpd_sender_restrictions,
            smtpd_relay_restrictions,
            smtpd_recipient_restrictions,
            smtpd_delay_reject,
            smtpd_reject_unlisted_recipient,
            relay_recipient_maps,
            smtpd_sender_login_maps,
            unknown_address_reject_code,
            smtpd_sasl_auth_enable,
            smtpd_tls_auth_only,
            smtpd_tls_security_level,
            smtpd_sasl_password_file,
            smtpd_tls_chain_files,
            smtp_sasl_auth_enable,
            smtp_sasl_password_maps,
            smtp_sasl_security_options,
            smtp_sasl_tls_security_options,
        } = self;
        let restrictions = |list: &[Restriction]| Setting::List(render_restrictions(list));
        let options = |list: &[SaslSecurityOption]| {
            Setting::List(list.iter().map(|o| o.as_str().to_owned()).collect())
        };
        let duration = |d: &Duration| Setting::Duration(*d);
        let count = |n: &usize| Setting::Int(*n as u64);
        let rate = |n: &u32| Setting::Int(u64::from(*n));
        let prefix = |n: &u8| Setting::Int(u64::from(*n));
        let networks = |nets: &[IpNet]| Setting::List(nets.iter().map(postfix_network).collect());
        let mut settings = vec![
            ("myhostname", Setting::Text(myhostname)),
            ("mydomain", Setting::Text(mydomain)),
            ("mail_name", Setting::Text(mail_name)),
            ("smtpd_banner", Setting::Text(smtpd_banner)),
            ("mynetworks", networks(mynetworks)),
            ("relay_domains", Setting::List(relay_domains.clone())),
            ("queue_directory", Setting::Path(Some(queue_directory))),
            ("queue_shard_count", count(queue_shard_count)),
            ("message_size_limit", Setting::Int(*message_size_limit)),
            ("smtpd_recipient_limit", count(smtpd_recipient_limit)),
            ("smtpd_timeout", Setting::Duration(*smtpd_timeout)),
            ("smtpd_helo_required", Setting::Bool(*smtpd_helo_required)),
            ("smtpd_hard_error_limit", count(smtpd_hard_error_limit)),
            ("smtpd_soft_error_limit", count(smtpd_soft_error_limit)),
            (
                "smtpd_error_sleep_time",
                Setting::Duration(*smtpd_error_sleep_time),
            ),
            ("smtpd_junk_command_limit", count(smtpd_junk_command_limit)),
            (
                "smtpd_forbid_bare_newline",
                Setting::Word(smtpd_forbid_bare_newline.as_str()),
            ),
            (
                "smtpd_forbid_unauth_pipelining",
                Setting::Bool(*smtpd_forbid_unauth_pipelining),
            ),
            ("smtpd_command_line_limit", count(smtpd_command_line_limit)),
            ("smtpd_text_line_limit", count(smtpd_text_line_limit)),
            (
                "smtpd_shutdown_grace_time",
                Setting::Duration(*smtpd_shutdown_grace_time),
            ),
            (
                "smtpd_tls_cert_file",
                Setting::Path(smtpd_tls_cert_file.as_deref()),
            ),
            (
                "smtpd_tls_key_file",
                Setting::Path(smtpd_tls_key_file.as_deref()),
            ),
            ("listener", Setting::Listeners(listener)),
            ("queue_run_delay", duration(queue_run_delay)),
            ("minimal_backoff_time", duration(minimal_backoff_time)),
            ("maximal_backoff_time", duration(maximal_backoff_time)),
            ("maximal_queue_lifetime", duration(maximal_queue_lifetime)),
            ("bounce_queue_lifetime", duration(bounce_queue_lifetime)),
            ("delay_warning_time", duration(delay_warning_time)),
            ("smtp_connect_timeout", duration(smtp_connect_timeout)),
            ("smtp_helo_timeout", duration(smtp_helo_timeout)),
            ("smtp_mail_timeout", duration(smtp_mail_timeout)),
            ("smtp_rcpt_timeout", duration(smtp_rcpt_timeout)),
            ("smtp_data_init_timeout", duration(smtp_data_init_timeout)),
            ("smtp_data_xfer_timeout", duration(smtp_data_xfer_timeout)),
            ("smtp_data_done_timeout", duration(smtp_data_done_timeout)),
            (
                "smtp_connection_cache_time_limit",
                duration(smtp_connection_cache_time_limit),
            ),
            (
                "qmgr_message_active_limit",
                count(qmgr_message_active_limit),
            ),
            (
                "default_destination_concurrency_limit",
                count(default_destination_concurrency_limit),
            ),
            (
                "default_destination_recipient_limit",
                count(default_destination_recipient_limit),
            ),
            (
                "default_destination_rate_delay",
                duration(default_destination_rate_delay),
            ),
            (
                "initial_destination_concurrency",
                count(initial_destination_concurrency),
            ),
            (
                "default_destination_concurrency_failed_cohort_limit",
                Setting::Int(u64::from(
                    *default_destination_concurrency_failed_cohort_limit,
                )),
            ),
            (
                "default_destination_rate_limit",
                Setting::Rendered(rate_text(default_destination_rate_limit.as_ref())),
            ),
            ("bounce_size_limit", Setting::Int(*bounce_size_limit)),
            ("soft_bounce", Setting::Bool(*soft_bounce)),
            (
                "disable_mime_output_conversion",
                Setting::Bool(*disable_mime_output_conversion),
            ),
            (
                "relayhost",
                Setting::Rendered(
                    relayhost
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                ),
            ),
            ("default_transport", Setting::Text(default_transport)),
            (
                "smtp_tls_security_level",
                Setting::Word(smtp_tls_security_level.as_str()),
            ),
            (
                "smtp_tls_policy_maps",
                Setting::Table(inline_table(smtp_tls_policy_maps.iter().map(
                    |(destination, policy)| (destination, toml_string(&policy.to_string())),
                ))),
            ),
            ("smtp_tls_CAfile", Setting::Path(smtp_tls_cafile.as_deref())),
            ("smtp_mta_sts_enable", Setting::Bool(*smtp_mta_sts_enable)),
            ("defer_transports", Setting::List(defer_transports.clone())),
            (
                "fast_flush_domains",
                Setting::List(fast_flush_domains.clone()),
            ),
            ("fast_flush_refresh_time", duration(fast_flush_refresh_time)),
            ("fast_flush_purge_time", duration(fast_flush_purge_time)),
            (
                "smtpd_etrn_restrictions",
                Setting::List(render_restrictions(smtpd_etrn_restrictions)),
            ),
            (
                "authorized_flush_users",
                Setting::List(
                    authorized_flush_users
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                ),
            ),
            (
                "transport_maps",
                Setting::Table(inline_table(transport_maps.iter().map(
                    |(pattern, route)| (pattern.as_str(), toml_string(&route.to_string())),
                ))),
            ),
            (
                "transport",
                Setting::Table(self.render_transports(transport)),
            ),
            (
                "smtpd_client_connection_count_limit",
                count(smtpd_client_connection_count_limit),
            ),
            (
                "smtpd_client_connection_rate_limit",
                rate(smtpd_client_connection_rate_limit),
            ),
            (
                "smtpd_client_message_rate_limit",
                rate(smtpd_client_message_rate_limit),
            ),
            (
                "smtpd_client_recipient_rate_limit",
                rate(smtpd_client_recipient_rate_limit),
            ),
            (
                "smtpd_client_new_tls_session_rate_limit",
                rate(smtpd_client_new_tls_session_rate_limit),
            ),
            (
                "smtpd_client_auth_rate_limit",
                rate(smtpd_client_auth_rate_limit),
            ),
            ("anvil_rate_time_unit", duration(anvil_rate_time_unit)),
            (
                "smtpd_client_event_limit_exceptions",
                networks(smtpd_client_event_limit_exceptions),
            ),
            (
                "smtpd_client_ipv4_prefix_length",
                prefix(smtpd_client_ipv4_prefix_length),
            ),
            (
                "smtpd_client_ipv6_prefix_length",
                prefix(smtpd_client_ipv6_prefix_length),
            ),
            (
                "smtpd_client_restrictions",
                restrictions(smtpd_client_restrictions),
            ),
            (
                "smtpd_helo_restrictions",
                restrictions(smtpd_helo_restrictions),
            ),
            (
                "smtpd_sender_restrictions",
                restrictions(smtpd_sender_restrictions),
            ),
            (
                "smtpd_relay_restrictions",
                restrictions(smtpd_relay_restrictions),
            ),
            (
                "smtpd_recipient_restrictions",
                restrictions(smtpd_recipient_restrictions),
            ),
            ("smtpd_delay_reject", Setting::Bool(*smtpd_delay_reject)),
            (
                "smtpd_reject_unlisted_recipient",
                Setting::Bool(*smtpd_reject_unlisted_recipient),
            ),
            (
                "relay_recipient_maps",
                Setting::Path(relay_recipient_maps.as_ref().map(|m| m.path.as_path())),
            ),
            (
                "smtpd_sender_login_maps",
                Setting::Path(smtpd_sender_login_maps.as_ref().map(|m| m.path.as_path())),
            ),
            (
                "unknown_address_reject_code",
                Setting::Int(u64::from(*unknown_address_reject_code)),
            ),
            (
                "smtpd_sasl_auth_enable",
                Setting::Bool(*smtpd_sasl_auth_enable),
            ),
            ("smtpd_tls_auth_only", Setting::Bool(*smtpd_tls_auth_only)),
            (
                "smtpd_tls_security_level",
                Setting::Word(smtpd_tls_security_level.as_str()),
            ),
            (
                "smtpd_sasl_password_file",
                Setting::Path(smtpd_sasl_password_file.as_deref()),
            ),
            (
                "smtpd_tls_chain_files",
                Setting::List(
                    smtpd_tls_chain_files
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect(),
                ),
            ),
            (
                "smtp_sasl_auth_enable",
                Setting::Bool(*smtp_sasl_auth_enable),
            ),
            (
                "smtp_sasl_password_maps",
                Setting::Path(smtp_sasl_password_maps.as_ref().map(|m| m.path.as_path())),
            ),
            (
                "smtp_sasl_security_options",
                options(smtp_sasl_security_options),
            ),
            (
                "smtp_sasl_tls_security_options",
                options(smtp_sasl_tls_security_options),
            ),
        ];
        settings.sort_by_key(|(k, _)| *k);
        settings
    }
}

/// A restriction list in configuration syntax.
fn render_restrictions(list: &[Restriction]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

/// Postfix's spelling of a network: IPv6 in brackets.
fn postfix_network(net: &IpNet) -> String {
    match net {
        IpNet::V4(net) => net.to_string(),
        IpNet::V6(net) => format!("[{}]/{}", net.addr(), net.prefix_len()),
    }
}

/// A typed setting, for rendering.
enum Setting<'a> {
    Text(&'a str),
    List(Vec<String>),
    Int(u64),
    Bool(bool),
    Duration(Duration),
    Path(Option<&'a Path>),
    Word(&'static str),
    /// Text rendered from a typed value.
    Rendered(String),
    Listeners(&'a [Listener]),
    /// An inline TOML table, already rendered.
    Table(String),
}

impl Setting<'_> {
    /// The value as TOML.
    fn toml(&self) -> String {
        match self {
            Setting::Text(s) => toml_string(s),
            Setting::List(items) => {
                let items: Vec<String> = items.iter().map(|i| toml_string(i)).collect();
                format!("[{}]", items.join(", "))
            }
            Setting::Int(n) => n.to_string(),
            Setting::Bool(b) => b.to_string(),
            Setting::Duration(d) => toml_string(&humantime::format_duration(*d).to_string()),
            Setting::Path(p) => {
                toml_string(&p.map(|p| p.display().to_string()).unwrap_or_default())
            }
            Setting::Word(w) => toml_string(w),
            Setting::Rendered(s) => toml_string(s),
            Setting::Table(table) => table.clone(),
            Setting::Listeners(listeners) => {
                let tables: Vec<String> = listeners
                    .iter()
                    .map(|l| {
                        let mut fields = vec![
                            ("name", toml_string(&l.name)),
                            ("address", toml_string(&l.address.to_string())),
                            ("tls", toml_string(l.tls.as_str())),
                        ];
                        fields.extend(render_overrides(&l.overrides));
                        inline_table(fields)
                    })
                    .collect();
                format!("[{}]", tables.join(", "))
            }
        }
    }

    /// The value as text inside another value (`$name`); `None` for tables.
    fn plain(&self) -> Option<String> {
        Some(match self {
            Setting::Text(s) => (*s).to_owned(),
            Setting::List(items) => items.join(", "),
            Setting::Int(n) => n.to_string(),
            Setting::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
            Setting::Duration(d) => humantime::format_duration(*d).to_string(),
            Setting::Path(p) => p.map(|p| p.display().to_string()).unwrap_or_default(),
            Setting::Word(w) => (*w).to_owned(),
            Setting::Rendered(s) => s.clone(),
            Setting::Listeners(_) | Setting::Table(_) => return None,
        })
    }
}

/// The overrides a listener sets, as (key, TOML value) pairs.
fn render_overrides(o: &ListenerOverrides) -> Vec<(&'static str, String)> {
    let list = |l: &[Restriction]| {
        let items: Vec<String> = render_restrictions(l)
            .iter()
            .map(|i| toml_string(i))
            .collect();
        format!("[{}]", items.join(", "))
    };
    let mut out = Vec::new();
    if let Some(b) = o.smtpd_sasl_auth_enable {
        out.push(("smtpd_sasl_auth_enable", b.to_string()));
    }
    if let Some(b) = o.smtpd_tls_auth_only {
        out.push(("smtpd_tls_auth_only", b.to_string()));
    }
    if let Some(level) = o.smtpd_tls_security_level {
        out.push(("smtpd_tls_security_level", toml_string(level.as_str())));
    }
    for (key, value) in [
        ("smtpd_client_restrictions", &o.smtpd_client_restrictions),
        ("smtpd_helo_restrictions", &o.smtpd_helo_restrictions),
        ("smtpd_sender_restrictions", &o.smtpd_sender_restrictions),
        ("smtpd_relay_restrictions", &o.smtpd_relay_restrictions),
        (
            "smtpd_recipient_restrictions",
            &o.smtpd_recipient_restrictions,
        ),
    ] {
        if let Some(value) = value {
            out.push((key, list(value)));
        }
    }
    out
}

/// An inline TOML table of (key, rendered value) pairs; keys are quoted
/// unless they are bare keys.
fn inline_table<'a>(fields: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let fields: Vec<String> = fields
        .into_iter()
        .map(|(key, value)| {
            let bare = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            let key = if bare {
                key.to_owned()
            } else {
                toml_string(key)
            };
            format!("{key} = {value}")
        })
        .collect();
    if fields.is_empty() {
        "{}".to_owned()
    } else {
        format!("{{ {} }}", fields.join(", "))
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The whole pipeline: merge, check keys, expand, validate.
fn load(file: Option<&Path>, env: EnvVars) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Defaults);
    if let Some(path) = file {
        if let Err(e) = std::fs::read_to_string(path) {
            return Err(ConfigError::new(vec![Problem {
                kind: ProblemKind::File,
                origin: Origin::File(path.to_owned()),
                key: None,
                message: format!("cannot read the configuration file: {e}"),
                key_in_message: false,
            }]));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(env.clone());

    let origin_for = |metadata: Option<&figment::Metadata>, key: &str| match metadata {
        Some(md) if md.source.as_ref().and_then(|s| s.file_path()).is_some() => {
            Origin::File(file.map_or_else(PathBuf::new, Path::to_owned))
        }
        Some(md) if md.name == ENV_NAME => Origin::Env(env.var_name(key).map_or_else(
            || format!("{ENV_PREFIX}{}", key.to_ascii_uppercase()),
            str::to_owned,
        )),
        _ => Origin::Default,
    };

    let merged = match figment.find_value("") {
        Ok(Value::Dict(_, dict)) => dict,
        Ok(_) => BTreeMap::new(),
        Err(error) => {
            let problems = error
                .into_iter()
                .map(|e| {
                    let key = e.path.join(".");
                    let origin = origin_for(e.metadata.as_ref(), &key);
                    Problem {
                        kind: ProblemKind::File,
                        origin,
                        key: (!key.is_empty()).then_some(key),
                        message: e.kind.to_string(),
                        key_in_message: false,
                    }
                })
                .collect();
            return Err(ConfigError::new(problems));
        }
    };

    let mut problems = Vec::new();
    let mut entries = BTreeMap::new();
    for (key, value) in merged {
        let origin = origin_for(figment.get_metadata(value.tag()), &key);
        if KEYS.contains(&key.as_str()) {
            entries.insert(
                key,
                Entry {
                    value,
                    origin,
                    derived: false,
                },
            );
        } else {
            let hint = suggest(&key, KEYS)
                .map(|s| match origin {
                    Origin::Env(_) => {
                        format!(" (did you mean {ENV_PREFIX}{}?)", s.to_ascii_uppercase())
                    }
                    _ => format!(" (did you mean '{s}'?)"),
                })
                .unwrap_or_default();
            problems.push(Problem {
                kind: ProblemKind::UnknownKey,
                message: format!("unknown key '{key}'{hint}"),
                key_in_message: false,
                origin,
                key: Some(key),
            });
        }
    }
    entries.entry("mydomain".to_owned()).or_insert(Entry {
        value: Value::from(""),
        origin: Origin::Default,
        derived: true,
    });

    problems.extend(expand_all(&mut entries));
    let config = validate(&entries, &mut problems);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::new(problems))
    }
}

/// Converts the expanded entries into a `Config`, pushing a problem for
/// each invalid value. Entries missing from `entries` have already been
/// reported.
fn validate(entries: &BTreeMap<String, Entry>, problems: &mut Vec<Problem>) -> Config {
    use crate::keys::{MIN_COMMAND_LINE_LIMIT, MIN_TEXT_LINE_LIMIT};

    let mut config = Config::builtin("localhost".to_owned());
    let mut failed: BTreeSet<&str> = KEYS
        .iter()
        .copied()
        .filter(|k| !entries.contains_key(*k))
        .collect();

    macro_rules! field {
        ($field:ident, $convert:expr) => {{
            let key = stringify!($field);
            if let Some(entry) = entries.get(key) {
                match $convert(&entry.value) {
                    Ok(value) => config.$field = value,
                    Err(message) => {
                        failed.insert(key);
                        problems.push(Problem::value(&entry.origin, key, message));
                    }
                }
            }
        }};
    }

    // The same, for conversions that report several problems.
    macro_rules! field_problems {
        ($field:ident, $convert:expr) => {{
            let key = stringify!($field);
            if let Some(entry) = entries.get(key) {
                match $convert(&entry.value) {
                    Ok(value) => config.$field = value,
                    Err(messages) => {
                        failed.insert(key);
                        for message in messages {
                            problems.push(Problem::value(&entry.origin, key, message));
                        }
                    }
                }
            }
        }};
    }

    let any = usize::MAX;
    field!(myhostname, convert::host_name);
    field!(mydomain, convert::host_name);
    field!(mail_name, convert::text);
    field!(smtpd_banner, convert::text);
    field!(mynetworks, convert::networks);
    field!(relay_domains, convert::domains);
    // The default `$relay_domains` is not checked again when relay_domains
    // is invalid; that is reported already.
    let flush_default = entries
        .get("fast_flush_domains")
        .is_some_and(|e| e.origin == Origin::Default);
    if flush_default && failed.contains("relay_domains") {
        failed.insert("fast_flush_domains");
    } else {
        field!(fast_flush_domains, flush::flush_domains);
    }
    field!(fast_flush_refresh_time, convert::positive_duration);
    field!(fast_flush_purge_time, convert::positive_duration);
    field_problems!(smtpd_etrn_restrictions, |v| restrictions::restrictions(
        v,
        ListKind::Etrn
    ));
    let smtpd_list = |v: &Value| restrictions::restrictions(v, ListKind::Smtpd);
    field_problems!(smtpd_client_restrictions, smtpd_list);
    field_problems!(smtpd_helo_restrictions, smtpd_list);
    field_problems!(smtpd_sender_restrictions, smtpd_list);
    field_problems!(smtpd_relay_restrictions, smtpd_list);
    field_problems!(smtpd_recipient_restrictions, smtpd_list);
    field!(smtpd_delay_reject, |v| match convert::boolean(v) {
        Ok(true) => Ok(true),
        Ok(false) => Err(
            "only yes is supported: client, HELO and sender restrictions are applied at RCPT, \
             where the reply can name the recipient"
                .to_owned()
        ),
        Err(e) => Err(e),
    });
    field!(smtpd_reject_unlisted_recipient, convert::boolean);
    field_problems!(relay_recipient_maps, address_map);
    field_problems!(smtpd_sender_login_maps, address_map);
    field!(unknown_address_reject_code, |v| convert::narrow(
        v, 400u16, 599
    ));
    field!(smtpd_sasl_auth_enable, convert::boolean);
    field!(smtpd_tls_auth_only, convert::boolean);
    field!(smtpd_tls_security_level, sasl::smtpd_tls_level);
    field!(smtpd_sasl_password_file, convert::optional_path);
    field!(smtpd_tls_chain_files, convert::paths);
    field!(smtp_sasl_auth_enable, convert::boolean);
    field!(smtp_sasl_password_maps, sasl::password_map);
    field!(smtp_sasl_security_options, sasl::security_options);
    field!(smtp_sasl_tls_security_options, sasl::security_options);
    field_problems!(authorized_flush_users, flush::flush_users);
    field!(queue_directory, convert::path);
    field!(queue_shard_count, |v| convert::count(v, 1, 256));
    field!(message_size_limit, |v| convert::integer(v, 0, u64::MAX));
    field!(smtpd_recipient_limit, |v| convert::count(v, 1, any));
    field!(smtpd_timeout, convert::positive_duration);
    field!(smtpd_helo_required, convert::boolean);
    field!(smtpd_hard_error_limit, |v| convert::count(v, 1, any));
    field!(smtpd_soft_error_limit, |v| convert::count(v, 0, any));
    field!(smtpd_error_sleep_time, convert::duration);
    field!(smtpd_junk_command_limit, |v| convert::count(v, 1, any));
    field!(smtpd_forbid_bare_newline, convert::bare_newline);
    field!(smtpd_forbid_unauth_pipelining, convert::boolean);
    field!(smtpd_command_line_limit, |v| convert::count(
        v,
        MIN_COMMAND_LINE_LIMIT,
        any
    ));
    field!(smtpd_text_line_limit, |v| convert::count(
        v,
        MIN_TEXT_LINE_LIMIT,
        any
    ));
    field!(smtpd_shutdown_grace_time, convert::duration);
    field!(smtpd_tls_cert_file, convert::optional_path);
    field!(smtpd_tls_key_file, convert::optional_path);
    field!(queue_run_delay, convert::positive_duration);
    field!(minimal_backoff_time, convert::positive_duration);
    field!(maximal_backoff_time, convert::positive_duration);
    field!(maximal_queue_lifetime, convert::duration_or_zero);
    field!(bounce_queue_lifetime, convert::duration_or_zero);
    field!(delay_warning_time, convert::duration_or_zero);
    field!(smtp_connect_timeout, convert::positive_duration);
    field!(smtp_helo_timeout, convert::positive_duration);
    field!(smtp_mail_timeout, convert::positive_duration);
    field!(smtp_rcpt_timeout, convert::positive_duration);
    field!(smtp_data_init_timeout, convert::positive_duration);
    field!(smtp_data_xfer_timeout, convert::positive_duration);
    field!(smtp_data_done_timeout, convert::positive_duration);
    field!(smtp_connection_cache_time_limit, convert::positive_duration);
    field!(qmgr_message_active_limit, |v| convert::count(v, 1, any));
    field!(default_destination_concurrency_limit, |v| convert::count(
        v, 1, any
    ));
    field!(default_destination_recipient_limit, |v| convert::count(
        v, 1, any
    ));
    field!(default_destination_rate_delay, convert::duration_or_zero);
    field!(initial_destination_concurrency, |v| convert::count(
        v,
        1,
        usize::MAX
    ));
    field!(default_destination_concurrency_failed_cohort_limit, |v| {
        convert::integer(v, 0, u64::from(u32::MAX)).map(|n| n as u32)
    });
    field!(default_destination_rate_limit, convert::rate_limit);
    field!(bounce_size_limit, |v| convert::integer(v, 0, u64::MAX));
    field!(soft_bounce, convert::boolean);
    field!(disable_mime_output_conversion, convert::boolean);
    field!(relayhost, convert::relayhost);
    field!(smtp_tls_security_level, convert::smtp_tls_level);
    field!(smtp_mta_sts_enable, convert::boolean);
    if let Some(entry) = entries.get("smtp_tls_CAfile") {
        match convert::optional_path(&entry.value) {
            Ok(path) => config.smtp_tls_cafile = path,
            Err(message) => {
                problems.push(Problem::value(&entry.origin, "smtp_tls_CAfile", message));
                failed.insert("smtp_tls_CAfile");
            }
        }
    }
    if let Some(entry) = entries
        .get("smtp_tls_policy_maps")
        .filter(|e| file_only(e, "smtp_tls_policy_maps", problems))
    {
        match tls_policy::tls_policy_maps(&entry.value, &entry.origin, problems) {
            Some(maps) => config.smtp_tls_policy_maps = maps,
            None => {
                failed.insert("smtp_tls_policy_maps");
            }
        }
    }
    // The default `$mynetworks` is not checked again when mynetworks is
    // invalid; that is reported already.
    let exceptions_default = entries
        .get("smtpd_client_event_limit_exceptions")
        .is_some_and(|e| e.origin == Origin::Default);
    if exceptions_default && failed.contains("mynetworks") {
        failed.insert("smtpd_client_event_limit_exceptions");
    } else {
        field!(smtpd_client_event_limit_exceptions, convert::networks);
    }
    field!(smtpd_client_connection_count_limit, |v| convert::count(
        v, 0, any
    ));
    let rate = |v: &Value| convert::narrow(v, 0, u32::MAX);
    field!(smtpd_client_connection_rate_limit, rate);
    field!(smtpd_client_message_rate_limit, rate);
    field!(smtpd_client_recipient_rate_limit, rate);
    field!(smtpd_client_new_tls_session_rate_limit, rate);
    field!(smtpd_client_auth_rate_limit, rate);
    field!(anvil_rate_time_unit, convert::positive_duration);
    field!(smtpd_client_ipv4_prefix_length, |v| convert::narrow(
        v, 1u8, 32
    ));
    field!(smtpd_client_ipv6_prefix_length, |v| convert::narrow(
        v, 1u8, 128
    ));

    // Transports first: the other keys name them. Their defaults come from
    // the keys above (built-in defaults where those failed; that failure is
    // reported already).
    let mut declared: Option<BTreeSet<String>> = None;
    if let Some(entry) = entries
        .get("transport")
        .filter(|e| file_only(e, "transport", problems))
    {
        let before = problems.len();
        if let Some(transports) = convert::transports(
            &entry.value,
            &entry.origin,
            |kind| config.default_transport_config(kind),
            problems,
        ) {
            declared = Some(transports.declared);
            config.transport = transports.valid;
        }
        if problems.len() != before {
            failed.insert("transport");
        }
    } else {
        failed.insert("transport");
    }
    field!(default_transport, |v| convert::transport_name(
        v,
        declared.as_ref()
    ));
    field!(defer_transports, |v| convert::transport_names(
        v,
        declared.as_ref()
    ));
    if let Some(entry) = entries
        .get("transport_maps")
        .filter(|e| file_only(e, "transport_maps", problems))
    {
        match convert::transport_maps(
            &entry.value,
            &entry.origin,
            declared.as_ref(),
            &config.transport,
            problems,
        ) {
            Some(maps) => config.transport_maps = maps,
            None => {
                failed.insert("transport_maps");
            }
        }
    }

    // The backoff times are a range.
    let backoff = ["minimal_backoff_time", "maximal_backoff_time"];
    if backoff.iter().all(|k| !failed.contains(k))
        && config.minimal_backoff_time > config.maximal_backoff_time
    {
        let min = humantime::format_duration(config.minimal_backoff_time);
        let max = humantime::format_duration(config.maximal_backoff_time);
        let (key, message) = if entries[backoff[0]].origin == Origin::Default {
            (
                backoff[1],
                format!("{max} is less than minimal_backoff_time ({min})"),
            )
        } else {
            (
                backoff[0],
                format!("{min} is greater than maximal_backoff_time ({max})"),
            )
        };
        problems.push(Problem::value(&entries[key].origin, key, message));
    }

    if let Some(entry) = entries.get("listener") {
        match convert::listeners(&entry.value, &entry.origin, problems) {
            Some(listeners) => config.listener = listeners,
            None => {
                failed.insert("listener");
            }
        }
    }

    // The certificate and the key go together.
    let tls_keys = ["smtpd_tls_cert_file", "smtpd_tls_key_file"];
    if tls_keys.iter().all(|k| !failed.contains(k)) {
        let cert = config.smtpd_tls_cert_file.is_some();
        let key = config.smtpd_tls_key_file.is_some();
        if cert != key {
            let (set, unset) = if cert {
                (tls_keys[0], tls_keys[1])
            } else {
                (tls_keys[1], tls_keys[0])
            };
            problems.push(Problem::value(
                &entries[set].origin,
                set,
                format!("set without {unset}; set both or neither"),
            ));
        } else if !failed.contains("listener") && !cert && config.smtpd_tls_chain_files.is_empty() {
            let origin = &entries["listener"].origin;
            for listener in config.listener.iter().filter(|l| l.tls != TlsMode::None) {
                problems.push(Problem::listener(
                    origin,
                    format!(
                        "listener '{}': tls = \"{}\" requires smtpd_tls_chain_files, or \
                         smtpd_tls_cert_file and smtpd_tls_key_file, which are not set",
                        listener.name, listener.tls
                    ),
                ));
            }
        }
    }
    check_smtpd_policies(&config, entries, &failed, problems);
    if config.smtp_sasl_auth_enable
        && config.smtp_sasl_password_maps.is_none()
        && !failed.contains("smtp_sasl_password_maps")
    {
        problems.push(Problem::value(
            &entries["smtp_sasl_auth_enable"].origin,
            "smtp_sasl_auth_enable",
            "set without smtp_sasl_password_maps: the client has no login to present",
        ));
    }
    config
}

/// `relay_recipient_maps` and `smtpd_sender_login_maps`: a file, or empty.
fn address_map(value: &Value) -> Result<Option<AddressMap>, Vec<String>> {
    let path = convert::optional_path(value).map_err(|m| vec![m])?;
    let Some(path) = path else {
        return Ok(None);
    };
    let path =
        restrictions::table_path("table", &path.display().to_string()).map_err(|m| vec![m])?;
    AddressMap::load_problems(path).map(Some)
}

/// Checks each listener's effective policy: Postfix's open-relay rule,
/// AUTH needs a password file, mandatory TLS needs TLS.
fn check_smtpd_policies(
    config: &Config,
    entries: &BTreeMap<String, Entry>,
    failed: &BTreeSet<&str>,
    problems: &mut Vec<Problem>,
) {
    let lists = ["smtpd_relay_restrictions", "smtpd_recipient_restrictions"];
    if lists.iter().any(|k| failed.contains(k)) || failed.contains("listener") {
        return;
    }
    let listener_origin = &entries["listener"].origin;
    for listener in &config.listener {
        let policy = config.smtpd_policy(listener);
        let o = &listener.overrides;
        let overridden =
            o.smtpd_relay_restrictions.is_some() || o.smtpd_recipient_restrictions.is_some();
        // As Postfix's check, a safeguard after `permit` does not count:
        // it is never reached.
        let reachable_safeguard = |list: &[Restriction]| {
            list.iter()
                .take_while(|r| **r != Restriction::Permit)
                .any(Restriction::is_relay_safeguard)
        };
        let safe = reachable_safeguard(&policy.relay_restrictions)
            || reachable_safeguard(&policy.recipient_restrictions);
        let open = "neither smtpd_relay_restrictions nor smtpd_recipient_restrictions contains \
             reject, defer, reject_unauth_destination or defer_unauth_destination: that would \
             make an open relay";
        if !safe {
            if overridden {
                problems.push(Problem::listener(
                    listener_origin,
                    format!("listener '{}': {open}", listener.name),
                ));
            } else {
                let key = if entries["smtpd_relay_restrictions"].origin == Origin::Default {
                    lists[1]
                } else {
                    lists[0]
                };
                problems.push(Problem::value(
                    &entries[key].origin,
                    key,
                    format!("{open} (listener '{}')", listener.name),
                ));
                // One report per key is enough when no listener overrides.
                return;
            }
        }
        if policy.sasl_auth_enable
            && config.smtpd_sasl_password_file.is_none()
            && !failed.contains("smtpd_sasl_password_file")
        {
            problems.push(Problem::value(
                &entries["smtpd_sasl_password_file"].origin,
                "smtpd_sasl_password_file",
                format!(
                    "AUTH is enabled on listener '{}' but no password file is set; create one \
                     with `towerpost passwd add USER` and set smtpd_sasl_password_file",
                    listener.name
                ),
            ));
        }
        if policy.tls_security_level != SmtpdTlsLevel::None && listener.tls == TlsMode::None {
            problems.push(Problem::listener(
                listener_origin,
                format!(
                    "listener '{}': smtpd_tls_security_level = \"{}\" needs tls = \"starttls\" \
                     or \"implicit\"",
                    listener.name, policy.tls_security_level
                ),
            ));
        }
    }
}

/// Whether `entry` of the table `key` may be used: tables are only read from
/// the file, so an environment variable is a problem.
fn file_only(entry: &Entry, key: &str, problems: &mut Vec<Problem>) -> bool {
    if let Origin::Env(_) = entry.origin {
        problems.push(Problem::value(
            &entry.origin,
            key,
            "this table cannot be set from the environment; set it in the file",
        ));
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_cover_every_key() {
        let config = Config::default();
        let keys: Vec<&str> = config.settings().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, KEYS);
    }

    #[test]
    fn inline_tables_quote_keys_that_are_not_bare() {
        assert_eq!(inline_table([]), "{}");
        let fields = [
            ("a-b_1", "1".to_owned()),
            ("x.y", "2".to_owned()),
            ("*", "3".to_owned()),
        ];
        assert_eq!(inline_table(fields), r#"{ a-b_1 = 1, "x.y" = 2, "*" = 3 }"#);
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(toml_string("\u{1}"), r#""\u0001""#);
    }

    #[test]
    fn default_equals_loading_nothing() {
        assert_eq!(Config::load_with_env(None, &[]).unwrap(), Config::default());
    }

    #[test]
    fn default_banner_uses_hostname_and_mail_name() {
        let config = Config::builtin("mx.example.com".to_owned());
        assert_eq!(config.smtpd_banner, "mx.example.com ESMTP towerpost");
        assert_eq!(config.mydomain, "example.com");
    }
}
