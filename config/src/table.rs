//! The configuration keys: one entry per key, from which the
//! [`Config`] struct, the built-in defaults, the conversions, `config show`
//! and the generated reference (docs/config-reference.md) all come. See
//! `key_macro.rs` for the entry syntax.
//!
//! Adding a key: add its entry here (and, if it reaches a server layer,
//! one line in `server/src/settings.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use figment::value::Dict;
use ipnet::IpNet;

use crate::key_macro::{config_keys, d};
use crate::keys::{
    MIN_COMMAND_LINE_LIMIT, MIN_TEXT_LINE_LIMIT, builtin_transport_table, default_listener_table,
    system_hostname,
};
use crate::restrictions::ListKind;
use crate::show::Setting;
use crate::{
    AddressMap, BareNewline, Listener, LogFormat, Nexthop, PasswordMap, RateLimit, Restriction,
    SaslSecurityOption, SmtpTlsLevel, SmtpdTlsLevel, TlsPolicyMap, TransportConfig,
    TransportMapEntry, UpstreamProxyProtocol, UserRule, convert, flush, restrictions, sasl,
};

config_keys! {
    /// `myhostname`: the host name of this system, used in the banner and
    /// HELO. Default: the system host name.
    myhostname "myhostname": String = d(system_hostname()) => (one convert::host_name), shown "the system host name";
    /// `mydomain`: the domain of this system. Default: `myhostname` without
    /// its first label, or `localdomain` when it has a single label.
    mydomain "mydomain": String = None => (one convert::host_name), shown "$myhostname without its first label, or localdomain";
    /// `mail_name`: the mail system name in the banner. Default `towerpost`.
    mail_name "mail_name": String = d("towerpost") => (one convert::text);
    /// `smtpd_banner`: the text after `220` in the greeting. Default
    /// `$myhostname ESMTP $mail_name`.
    smtpd_banner "smtpd_banner": String = d("$myhostname ESMTP $mail_name") => (one convert::text);
    /// `mynetworks`: trusted client networks. Default `127.0.0.0/8` and
    /// `[::1]/128`.
    mynetworks "mynetworks": Vec<IpNet> = d(vec!["127.0.0.0/8", "[::1]/128"]) => (one convert::networks);
    /// `relay_domains`: domains this relay accepts mail for, lower-cased; a
    /// leading dot (`.example.com`) means subdomains. Default: none.
    relay_domains "relay_domains": Vec<String> = d(Vec::<String>::new()) => (one convert::domains);
    /// `syslog_name`: the program name in each log line
    /// (`towerpost/smtpd[pid]: …`). Default `towerpost`; `postfix` makes
    /// the lines match tools' stock patterns without an override.
    syslog_name "syslog_name": String = d("towerpost") => (one convert::syslog_name);
    /// `log_format` (towerpost): `postfix`, the mail-log line as Postfix
    /// writes it, or `json`, one JSON object per line with the same
    /// fields. Default `postfix`.
    log_format "log_format": LogFormat = d("postfix") => (one convert::log_format);
    /// `maillog_file`: the file the log goes to, opened for appending and
    /// reopened on SIGUSR1 (after logrotate moved it). Default unset: standard
    /// error (the journal under systemd).
    maillog_file "maillog_file": Option<PathBuf> = d("") => (one convert::optional_path);
    /// `metrics_listen` (towerpost): the address of the HTTP listener
    /// serving Prometheus metrics at `/metrics` and a health check at
    /// `/healthz`. Default unset: no listener.
    metrics_listen "metrics_listen": Option<std::net::SocketAddr> = d("") => (one convert::optional_socket_address);
    /// `metrics_destination_limit` (towerpost): how many recipient
    /// domains, those with the most queued mail, `/metrics` reports in
    /// `towerpost_queue_destination_messages`, besides every
    /// `fast_flush_domains` site. Default 20, at most 1000.
    metrics_destination_limit "metrics_destination_limit": usize = d(20u64) => (one |v| convert::count(v, 0, 1000));
    /// `queue_directory`: where the queue lives. Default `spool`, relative
    /// to the working directory.
    queue_directory "queue_directory": PathBuf = d("spool") => (one convert::path);
    /// `queue_shard_count` (towerpost): number of queue shards, 1 to 256.
    /// Default 2.
    queue_shard_count "queue_shard_count": usize = d(2u64) => (one |v| convert::count(v, 1, 256));
    /// `message_size_limit`: the maximal message size in bytes; 0 means
    /// unlimited. Default 10240000.
    message_size_limit "message_size_limit": u64 = d(10240000u64) => (one |v| convert::integer(v, 0, u64::MAX));
    /// `smtpd_recipient_limit`: the maximal number of recipients of one
    /// message. Default 1000.
    smtpd_recipient_limit "smtpd_recipient_limit": usize = d(1000u64) => (one |v| convert::count(v, 1, usize::MAX));
    /// `smtpd_timeout`: how long to wait for a client command or data.
    /// Default 300 s.
    smtpd_timeout "smtpd_timeout": Duration = d("300s") => (one convert::positive_duration);
    /// `smtpd_helo_required`: whether HELO/EHLO must come before MAIL.
    /// Default false.
    smtpd_helo_required "smtpd_helo_required": bool = d(false) => (one convert::boolean);
    /// `smtpd_hard_error_limit`: errors after which the connection is closed.
    /// Default 20.
    smtpd_hard_error_limit "smtpd_hard_error_limit": usize = d(20u64) => (one |v| convert::count(v, 1, usize::MAX));
    /// `smtpd_soft_error_limit`: errors after which each reply is delayed by
    /// `smtpd_error_sleep_time`. Default 10.
    smtpd_soft_error_limit "smtpd_soft_error_limit": usize = d(10u64) => (one |v| convert::count(v, 0, usize::MAX));
    /// `smtpd_error_sleep_time`: the delay once the soft error limit is
    /// reached. Default 1 s.
    smtpd_error_sleep_time "smtpd_error_sleep_time": Duration = d("1s") => (one convert::duration);
    /// `smtpd_junk_command_limit`: NOOP/RSET/VRFY/ETRN commands allowed
    /// before they count as errors. Default 100.
    smtpd_junk_command_limit "smtpd_junk_command_limit": usize = d(100u64) => (one |v| convert::count(v, 1, usize::MAX));
    /// `smtpd_forbid_bare_newline`: what to do with a bare LF. Default
    /// [`BareNewline::Normalize`]; Postfix's `no` is refused.
    smtpd_forbid_bare_newline "smtpd_forbid_bare_newline": BareNewline = d("normalize") => (one convert::bare_newline);
    /// `smtpd_forbid_unauth_pipelining`: whether to reject clients that send
    /// commands ahead without PIPELINING. Default true.
    smtpd_forbid_unauth_pipelining "smtpd_forbid_unauth_pipelining": bool = d(true) => (one convert::boolean);
    /// `smtpd_command_line_limit` (towerpost): the maximal command line
    /// length in bytes including CRLF; at least 512 (RFC 5321). Default 512.
    smtpd_command_line_limit "smtpd_command_line_limit": usize = d(512u64) => (one |v| convert::count( v, MIN_COMMAND_LINE_LIMIT, usize::MAX ));
    /// `smtpd_text_line_limit` (towerpost): the maximal length of a message
    /// text line in bytes including CRLF; at least 1000 (RFC 5321). Default
    /// 1000.
    smtpd_text_line_limit "smtpd_text_line_limit": usize = d(1000u64) => (one |v| convert::count( v, MIN_TEXT_LINE_LIMIT, usize::MAX ));
    /// `queue_minfree`: the free space, in bytes, the queue file system
    /// must keep; MAIL is answered `452 4.3.1 Insufficient system storage`
    /// when less would remain after the message's `SIZE=`. As Postfix, the
    /// effective minimum is at least 1.5 × `message_size_limit`. Default 0.
    queue_minfree "queue_minfree": u64 = d(0u64) => (one |v| convert::integer(v, 0, u64::MAX));
    /// `smtpd_session_limit` (towerpost): the most SMTP sessions open at
    /// once, over all listeners; a client beyond it is told `421 4.3.2`
    /// and disconnected. Postfix bounds smtpd by its process limit (100);
    /// an async session costs little, so 500, which also stays clear of
    /// the usual 1024 file descriptors. Above 80% of it the server is
    /// under stress (per-record deadlines, `smtpd_timeout` at most 10 s).
    /// 0: no limit.
    smtpd_session_limit "smtpd_session_limit": usize = d(500u64) => (one |v| convert::count(v, 0, usize::MAX));
    /// `smtpd_listen_backlog` (towerpost): how many connections the kernel
    /// queues for each listener before they are accepted (`listen(2)`'s
    /// backlog). Connections beyond it are dropped and the client retries
    /// after a second or more, so a burst needs room; Linux caps the value
    /// at `net.core.somaxconn` (4096 by default since 5.4). 1 to 65535.
    /// Default 4096.
    smtpd_listen_backlog "smtpd_listen_backlog": u32 = d(4096u64) => (one |v| convert::narrow(v, 1u32, 65535u32));
    /// `smtpd_message_memory_limit` (towerpost): the most message content,
    /// in bytes, that all sessions together hold in memory while
    /// receiving (of a large message, its first 256 KiB and one 256 KiB
    /// write buffer: the rest goes to its content file); a message that
    /// would exceed it is answered `452 4.3.1`, and so is MAIL while there
    /// is no room (for its `SIZE=`). 0: no limit. Default 256 MiB.
    smtpd_message_memory_limit "smtpd_message_memory_limit": u64 = d(268435456u64) => (one |v| convert::integer(v, 0, u64::MAX));
    /// `smtpd_per_record_deadline`: `smtpd_timeout` bounds a whole command
    /// line or DATA/BDAT transfer instead of each read, so a client that
    /// trickles bytes cannot hold a session. Always on under stress.
    /// Default no (as Postfix outside stress).
    smtpd_per_record_deadline "smtpd_per_record_deadline": bool = d(false) => (one convert::boolean);
    /// `smtpd_min_data_rate`: with per-record deadlines, each byte of DATA
    /// or BDAT content extends the transfer's deadline by 1/rate seconds
    /// (Postfix 3.7). At least 1. Default 500 bytes/s.
    smtpd_min_data_rate "smtpd_min_data_rate": u64 = d(500u64) => (one |v| convert::integer(v, 1, u64::MAX));
    /// `smtpd_shutdown_grace_time` (towerpost): how long in-flight
    /// transactions may finish after SIGTERM. Default 30 s.
    smtpd_shutdown_grace_time "smtpd_shutdown_grace_time": Duration = d("30s") => (one convert::duration);
    /// `smtpd_tls_cert_file`: the PEM certificate chain. Default unset.
    smtpd_tls_cert_file "smtpd_tls_cert_file": Option<PathBuf> = d("") => (one convert::optional_path);
    /// `smtpd_tls_key_file`: the PEM private key. Default unset.
    smtpd_tls_key_file "smtpd_tls_key_file": Option<PathBuf> = d("") => (one convert::optional_path);
    /// `listener` (`[[listener]]` tables): the sockets to listen on. Default:
    /// one listener `smtp` on `127.0.0.1:2525` without TLS. Names and
    /// addresses (except port 0) are unique; there is at least one.
    listener "listener": Vec<Listener> = d(default_listener_table()) => (manual);
    /// `queue_run_delay`: the time between scans of the deferred queue.
    /// Greater than zero. Default 300 s.
    queue_run_delay "queue_run_delay": Duration = d("300s") => (one convert::positive_duration);
    /// `minimal_backoff_time`: the minimal time between attempts to deliver
    /// a deferred message. At most `maximal_backoff_time`. Default 300 s.
    minimal_backoff_time "minimal_backoff_time": Duration = d("300s") => (one convert::positive_duration);
    /// `maximal_backoff_time`: the maximal time between attempts to deliver
    /// a deferred message. Default 4000 s.
    maximal_backoff_time "maximal_backoff_time": Duration = d("4000s") => (one convert::positive_duration);
    /// `maximal_queue_lifetime`: how long a message may stay queued before
    /// it is returned as undeliverable; zero means a single delivery attempt.
    /// Default 5 days.
    maximal_queue_lifetime "maximal_queue_lifetime": Duration = d("432000s") => (one convert::duration_or_zero);
    /// `bounce_queue_lifetime`: the same for bounce messages (null sender).
    /// Default 5 days.
    bounce_queue_lifetime "bounce_queue_lifetime": Duration = d("432000s") => (one convert::duration_or_zero);
    /// `delay_warning_time`: after how long the sender is told that a message
    /// is delayed; zero means never. Default 0 (no warnings).
    delay_warning_time "delay_warning_time": Duration = d("0s") => (one convert::duration_or_zero);
    /// `smtp_connect_timeout`: the time limit for connecting to a remote
    /// server. Greater than zero. Default 30 s.
    smtp_connect_timeout "smtp_connect_timeout": Duration = d("30s") => (one convert::positive_duration);
    /// `smtp_helo_timeout`: the time limit for the greeting and the reply to
    /// HELO/EHLO. Greater than zero. Default 300 s.
    smtp_helo_timeout "smtp_helo_timeout": Duration = d("300s") => (one convert::positive_duration);
    /// `smtp_mail_timeout`: the time limit for the reply to MAIL FROM.
    /// Greater than zero. Default 300 s.
    smtp_mail_timeout "smtp_mail_timeout": Duration = d("300s") => (one convert::positive_duration);
    /// `smtp_rcpt_timeout`: the time limit for the reply to RCPT TO. Greater
    /// than zero. Default 300 s.
    smtp_rcpt_timeout "smtp_rcpt_timeout": Duration = d("300s") => (one convert::positive_duration);
    /// `smtp_data_init_timeout`: the time limit for the reply to DATA.
    /// Greater than zero. Default 120 s.
    smtp_data_init_timeout "smtp_data_init_timeout": Duration = d("120s") => (one convert::positive_duration);
    /// `smtp_data_xfer_timeout`: the time limit for sending message content.
    /// Greater than zero. Default 180 s.
    smtp_data_xfer_timeout "smtp_data_xfer_timeout": Duration = d("180s") => (one convert::positive_duration);
    /// `smtp_data_done_timeout`: the time limit for the reply to the final
    /// `.`. Greater than zero. Default 600 s.
    smtp_data_done_timeout "smtp_data_done_timeout": Duration = d("600s") => (one convert::positive_duration);
    /// `smtp_connection_cache_time_limit`: how long an unused connection to a
    /// remote server is kept open for reuse. Greater than zero. Default 2 s.
    smtp_connection_cache_time_limit "smtp_connection_cache_time_limit": Duration = d("2s") => (one convert::positive_duration);
    /// `qmgr_message_active_limit`: the maximal number of messages in the
    /// active queue. At least 1. Default 20000.
    qmgr_message_active_limit "qmgr_message_active_limit": usize = d(20000u64) => (one |v| convert::count(v, 1, usize::MAX));
    /// `default_destination_concurrency_limit`: the default maximal number of
    /// parallel deliveries to one destination, for transports that do not
    /// set `destination_concurrency_limit`. At least 1. Default 20.
    default_destination_concurrency_limit "default_destination_concurrency_limit": usize = d(20u64) => (one |v| convert::count( v, 1, usize::MAX ));
    /// `initial_destination_concurrency`: the number of parallel
    /// deliveries a destination starts with; it grows by one with each
    /// delivery that reaches the next hop, up to the destination
    /// concurrency limit, and shrinks by one with each failure to connect.
    /// At least 1. Default 5.
    initial_destination_concurrency "initial_destination_concurrency": usize = d(5u64) => (one |v| convert::count( v, 1, usize::MAX ));
    /// `default_destination_concurrency_failed_cohort_limit`: after this
    /// many failed pseudo-cohorts (a window's worth of failed connections)
    /// with no success between, a destination is dead: its mail is deferred
    /// without attempts for `minimal_backoff_time`. 0: never. Default 1.
    default_destination_concurrency_failed_cohort_limit "default_destination_concurrency_failed_cohort_limit": u32 = d(1u64) => (one |v| { convert::integer(v, 0, u64::from(u32::MAX)).map(|n| n as u32) });
    /// `default_destination_rate_delay`: the pause after one delivery to a
    /// destination by one transport ends before the next starts (Postfix's
    /// name and meaning; a value above zero also limits that destination to
    /// one delivery at a time).
    /// Default 0: no pause.
    default_destination_rate_delay "default_destination_rate_delay": Duration = d("0s") => (one convert::duration_or_zero);
    /// `default_destination_rate_limit` (towerpost): at most this many
    /// messages per time unit to one destination by one transport, as
    /// `"N/unit"` such as `"600/1h"` (one every unit/N, evenly spaced), so
    /// a relay stays below a big receiver's throttling. Default `0`:
    /// none. Route such a receiver to a transport of its own in
    /// `transport_maps` to give it its own limit.
    default_destination_rate_limit "default_destination_rate_limit": Option<RateLimit> = d("0") => (one convert::rate_limit);
    /// `default_destination_recipient_limit`: the default maximal number of
    /// recipients per delivery, for transports that do not set
    /// `destination_recipient_limit`. At least 1. Default 50.
    default_destination_recipient_limit "default_destination_recipient_limit": usize = d(50u64) => (one |v| convert::count( v, 1, usize::MAX ));
    /// `bounce_size_limit`: the maximal amount of original message text, in
    /// bytes, returned in a non-delivery notification. Default 50000.
    bounce_size_limit "bounce_size_limit": u64 = d(50000u64) => (one |v| convert::integer(v, 0, u64::MAX));
    /// `soft_bounce`: a safety net that keeps mail queued instead of
    /// returning it: permanent (5xx) delivery errors are treated as temporary
    /// (4xx). Default false.
    soft_bounce "soft_bounce": bool = d(false) => (one convert::boolean);
    /// `disable_mime_output_conversion`: send 8-bit content unchanged to a
    /// next hop that does not offer 8BITMIME, instead of converting it to
    /// quoted-printable (RFC 6152 §3). Default false.
    disable_mime_output_conversion "disable_mime_output_conversion": bool = d(false) => (one convert::boolean);
    /// `relayhost`: the next hop for mail that `transport_maps` does not
    /// route, such as `[relay.example.com]:587`. Default unset (`""`): mail
    /// goes to the MX hosts of the recipient domain.
    relayhost "relayhost": Option<Nexthop> = d("") => (one convert::relayhost);
    /// `default_transport`: the transport for mail that `transport_maps` does
    /// not route to a transport. A declared transport. Default `smtp`.
    default_transport "default_transport": String = d("smtp") => (manual);
    /// `smtp_tls_security_level`: TLS use of the SMTP client. Default
    /// [`SmtpTlsLevel::May`] (as Postfix 3.11); `dane` and `fingerprint`
    /// are not supported.
    smtp_tls_security_level "smtp_tls_security_level": SmtpTlsLevel = d("may") => (one convert::smtp_tls_level);
    /// `smtp_tls_policy_maps` (a `[smtp_tls_policy_maps]` table):
    /// per-destination TLS policy, which wins over the transport's level
    /// and over MTA-STS ([`TlsPolicyMap`]). Default: none. Only settable
    /// in the file.
    smtp_tls_policy_maps "smtp_tls_policy_maps": TlsPolicyMap = d(Dict::new()) => (manual);
    /// `smtp_tls_CAfile`: a PEM file of CA certificates the SMTP client
    /// trusts in addition to the web PKI roots, for `verify`, `secure` and
    /// MTA-STS (a private next hop's CA). Default unset.
    smtp_tls_cafile "smtp_tls_CAfile": Option<PathBuf> = d("") => (one convert::optional_path);
    /// `smtp_mta_sts_enable`: honour the MTA-STS policies (RFC 8461) that
    /// recipient domains publish, for MX-lookup destinations without an
    /// `smtp_tls_policy_maps` entry. Default true.
    smtp_mta_sts_enable "smtp_mta_sts_enable": bool = d(true) => (one convert::boolean);
    /// `defer_transports`: transports that do not deliver until the queue is
    /// flushed explicitly (such as on ETRN). Declared transports. Default:
    /// none.
    defer_transports "defer_transports": Vec<String> = d(Vec::<String>::new()) => (manual);
    /// `fast_flush_domains`: the domains whose deferred mail the fast flush
    /// service indexes, so that ETRN and `sendmail -qR` can flush it; see
    /// [`Config::fast_flush_eligible`]. Lower-cased domains without a
    /// trailing dot (each also matches its subdomains), `.domain` (subdomains
    /// only) and address literals such as `[192.0.2.1]`. Default
    /// `$relay_domains` (so none by default, as Postfix 3.0 and later).
    fast_flush_domains "fast_flush_domains": Vec<String> = d("$relay_domains") => (manual);
    /// `fast_flush_refresh_time`: after how long a fast flush logfile with
    /// no delivery requests is refreshed. Greater than zero. Default 12 h.
    fast_flush_refresh_time "fast_flush_refresh_time": Duration = d("43200s") => (one convert::positive_duration);
    /// `fast_flush_purge_time`: after how long an unused fast flush logfile
    /// is deleted. Greater than zero. Default 7 days.
    fast_flush_purge_time "fast_flush_purge_time": Duration = d("604800s") => (one convert::positive_duration);
    /// `smtpd_etrn_restrictions`: the restrictions applied to ETRN, in
    /// order, in Postfix syntax (`permit_mynetworks, check_etrn_access
    /// /etc/x, reject`). Access tables are read when the configuration is
    /// loaded. Default: none (every client may use ETRN).
    smtpd_etrn_restrictions "smtpd_etrn_restrictions": Vec<Restriction> = d(Vec::<String>::new()) => (many |v| restrictions::restrictions( v, ListKind::Etrn ));
    /// `authorized_flush_users`: who may flush the queue (`postqueue -f`,
    /// `-s`, `-i`); see [`Config::flush_user_allowed`]. User names,
    /// `static:anyone` and `/file/name` (read when the configuration is
    /// loaded), each possibly negated with `!`. Default `static:anyone`.
    authorized_flush_users "authorized_flush_users": Vec<UserRule> = d(vec![crate::flush::ANYONE]) => (many flush::flush_users);
    /// `transport_maps` (a `[transport_maps]` table): routes by recipient
    /// domain, as in Postfix's transport(5). Keys are lower-cased patterns:
    /// a domain, `.domain` (its subdomains only) or `*` (any domain); values
    /// are `transport:nexthop` with either part empty. See [`Config::route`].
    /// Default: none. Only settable in the file.
    transport_maps "transport_maps": BTreeMap<String, TransportMapEntry> = d(Dict::new()) => (manual);
    /// `transport` (`[transport.NAME]` tables): the delivery transports, by
    /// name, with effective limits. The built-in `smtp`, `relay` (type
    /// smtp), `discard` and `error` are always present and can be changed by
    /// a table of the same name. Only settable in the file.
    transport "transport": BTreeMap<String, TransportConfig> = d(builtin_transport_table()) => (manual), shown "smtp, relay, discard, error", show |c: &Config| Setting::Table(c.render_transports(&c.transport));
    /// `smtpd_client_connection_count_limit`: the maximal number of
    /// simultaneous connections from one client; 0 means no limit. Default
    /// 50.
    smtpd_client_connection_count_limit "smtpd_client_connection_count_limit": usize = d(50u64) => (one |v| convert::count( v, 0, usize::MAX ));
    /// `smtpd_client_connection_rate_limit`: the maximal number of
    /// connections from one client per `anvil_rate_time_unit`; 0 means no
    /// limit. Default 0.
    smtpd_client_connection_rate_limit "smtpd_client_connection_rate_limit": u32 = d(0u64) => (one |v| convert::narrow(v, 0, u32::MAX));
    /// `smtpd_client_message_rate_limit`: the maximal number of MAIL FROM
    /// requests from one client per `anvil_rate_time_unit`; 0 means no
    /// limit. Default 0.
    smtpd_client_message_rate_limit "smtpd_client_message_rate_limit": u32 = d(0u64) => (one |v| convert::narrow(v, 0, u32::MAX));
    /// `smtpd_client_recipient_rate_limit`: the maximal number of RCPT TO
    /// and VRFY requests from one client per `anvil_rate_time_unit`; 0 means
    /// no limit. Default 0.
    smtpd_client_recipient_rate_limit "smtpd_client_recipient_rate_limit": u32 = d(0u64) => (one |v| convert::narrow(v, 0, u32::MAX));
    /// `smtpd_client_new_tls_session_rate_limit`: the maximal number of new
    /// (uncached) TLS sessions of one client per `anvil_rate_time_unit`; 0
    /// means no limit. Default 0.
    smtpd_client_new_tls_session_rate_limit "smtpd_client_new_tls_session_rate_limit": u32 = d(0u64) => (one |v| convert::narrow(v, 0, u32::MAX));
    /// `smtpd_client_auth_rate_limit`: the maximal number of AUTH commands
    /// from one client per `anvil_rate_time_unit`; 0 means no limit.
    /// Default 0.
    smtpd_client_auth_rate_limit "smtpd_client_auth_rate_limit": u32 = d(0u64) => (one |v| convert::narrow(v, 0, u32::MAX));
    /// `anvil_rate_time_unit`: the length of the fixed window of the client
    /// rate limits. Greater than zero. Default 60 s.
    anvil_rate_time_unit "anvil_rate_time_unit": Duration = d("60s") => (one convert::positive_duration);
    /// `smtpd_client_event_limit_exceptions`: clients exempt from the
    /// connection count and rate limits, in the syntax of `mynetworks`.
    /// Default `$mynetworks`.
    smtpd_client_event_limit_exceptions "smtpd_client_event_limit_exceptions": Vec<IpNet> = d("$mynetworks") => (manual);
    /// `smtpd_client_ipv4_prefix_length`: IPv4 clients are counted together
    /// by network of this prefix length, 1 to 32. Default 32 (each address
    /// on its own).
    smtpd_client_ipv4_prefix_length "smtpd_client_ipv4_prefix_length": u8 = d(32u64) => (one |v| convert::narrow( v, 1u8, 32 ));
    /// `smtpd_client_ipv6_prefix_length`: IPv6 clients are counted together
    /// by network of this prefix length, 1 to 128. Default 84.
    smtpd_client_ipv6_prefix_length "smtpd_client_ipv6_prefix_length": u8 = d(84u64) => (one |v| convert::narrow( v, 1u8, 128 ));
    /// `smtpd_client_restrictions`: restrictions on the client, applied at
    /// RCPT (`smtpd_delay_reject`). Default: none.
    smtpd_client_restrictions "smtpd_client_restrictions": Vec<Restriction> = d(Vec::<String>::new()) => (many |v| restrictions::restrictions(v, ListKind::Smtpd));
    /// `smtpd_helo_restrictions`: restrictions on the HELO/EHLO name,
    /// applied at RCPT. Default: none.
    smtpd_helo_restrictions "smtpd_helo_restrictions": Vec<Restriction> = d(Vec::<String>::new()) => (many |v| restrictions::restrictions(v, ListKind::Smtpd));
    /// `smtpd_sender_restrictions`: restrictions on the MAIL FROM address,
    /// applied at RCPT. Default: none.
    smtpd_sender_restrictions "smtpd_sender_restrictions": Vec<Restriction> = d(Vec::<String>::new()) => (many |v| restrictions::restrictions(v, ListKind::Smtpd));
    /// `smtpd_relay_restrictions`: the relay decision at RCPT, before
    /// `smtpd_recipient_restrictions`. Default `permit_mynetworks,
    /// permit_sasl_authenticated, defer_unauth_destination` (Postfix 2.10
    /// and later).
    smtpd_relay_restrictions "smtpd_relay_restrictions": Vec<Restriction> = d(vec!["permit_mynetworks", "permit_sasl_authenticated", "defer_unauth_destination"]) => (many |v| restrictions::restrictions(v, ListKind::Smtpd));
    /// `smtpd_recipient_restrictions`: restrictions on RCPT TO. Default:
    /// none. With `smtpd_relay_restrictions`, one of the two must refuse
    /// unauthorized relaying (Postfix's rule), or the configuration is
    /// refused.
    smtpd_recipient_restrictions "smtpd_recipient_restrictions": Vec<Restriction> = d(Vec::<String>::new()) => (many |v| restrictions::restrictions(v, ListKind::Smtpd));
    /// `smtpd_delay_reject`: apply client, HELO and sender restrictions at
    /// RCPT. Only `yes` (the default) is supported.
    smtpd_delay_reject "smtpd_delay_reject": bool = d(true) => (one |v| match convert::boolean(v) { Ok(true) => Ok(true), Ok(false) => Err( "only yes is supported: client, HELO and sender restrictions are applied at RCPT, where the reply can name the recipient" .to_owned() ), Err(e) => Err(e), });
    /// `smtpd_reject_unlisted_recipient`: refuse recipients of relay
    /// domains that `relay_recipient_maps` does not list, even without
    /// `reject_unlisted_recipient` in a list. Default true.
    smtpd_reject_unlisted_recipient "smtpd_reject_unlisted_recipient": bool = d(true) => (one convert::boolean);
    /// `relay_recipient_maps`: the valid recipients of `relay_domains`
    /// ([`AddressMap`]); unset means every address is valid. Default unset.
    relay_recipient_maps "relay_recipient_maps": Option<AddressMap> = d("") => (many crate::address_map_value);
    /// `smtpd_sender_login_maps`: which SASL logins own which sender
    /// addresses ([`AddressMap`], the value a list of logins), for
    /// `reject_sender_login_mismatch`. Default unset.
    smtpd_sender_login_maps "smtpd_sender_login_maps": Option<AddressMap> = d("") => (many crate::address_map_value);
    /// `unknown_address_reject_code`: the reply code when
    /// `reject_unknown_sender_domain` or `reject_unknown_recipient_domain`
    /// finds that a domain does not exist. Default 450 (as Postfix; set
    /// 550 once the setup is trusted).
    unknown_address_reject_code "unknown_address_reject_code": u16 = d(450u64) => (one |v| convert::narrow( v, 400u16, 599 ));
    /// `smtpd_sasl_auth_enable`: offer and accept AUTH (RFC 4954). Default
    /// false; usually set per listener.
    smtpd_sasl_auth_enable "smtpd_sasl_auth_enable": bool = d(false) => (one convert::boolean);
    /// `smtpd_tls_auth_only`: offer and accept AUTH only under TLS.
    /// Default **true** (Postfix: no): PLAIN and LOGIN send the password
    /// as it is, so plaintext AUTH must be asked for explicitly, on a
    /// listener whose traffic never leaves the host. Implied by
    /// `smtpd_tls_security_level = encrypt`.
    smtpd_tls_auth_only "smtpd_tls_auth_only": bool = d(true) => (one convert::boolean);
    /// `smtpd_tls_security_level`: `none`, `may` or `encrypt` (every
    /// command but EHLO, HELO, STARTTLS, NOOP and QUIT needs TLS first).
    /// Default `none`; a `starttls` listener is `may` unless set.
    smtpd_tls_security_level "smtpd_tls_security_level": SmtpdTlsLevel = d("") => (one sasl::smtpd_tls_level);
    /// `smtpd_upstream_proxy_protocol`: `haproxy` when the listener sits
    /// behind a TCP proxy or balancer (HAProxy `send-proxy` or
    /// `send-proxy-v2`) that announces each client with a PROXY protocol
    /// header, version 1 or 2: the address in it is the client that
    /// `mynetworks`, restrictions, rate limits, logs and `Received:` see. A
    /// connection without a valid header is closed without a greeting.
    /// Default empty (no header is read: a PROXY line is an unknown
    /// command). Usually set per listener; only for listeners that nothing
    /// but the proxy can reach.
    smtpd_upstream_proxy_protocol "smtpd_upstream_proxy_protocol": UpstreamProxyProtocol = d("") => (one convert::upstream_proxy_protocol);
    /// `smtpd_upstream_proxy_timeout`: how long to wait for the PROXY
    /// header. Default 5s.
    smtpd_upstream_proxy_timeout "smtpd_upstream_proxy_timeout": Duration = d("5s") => (one convert::positive_duration);
    /// `smtpd_sasl_password_file` (towerpost): the file of users and
    /// argon2id password hashes that AUTH checks, managed by `towerpost
    /// passwd`. Default unset; required when AUTH is enabled anywhere.
    smtpd_sasl_password_file "smtpd_sasl_password_file": Option<PathBuf> = d("") => (one convert::optional_path);
    /// `smtpd_tls_chain_files`: PEM files, each a private key with its
    /// certificate chain, chosen by SNI; the first is the default. Used
    /// instead of `smtpd_tls_cert_file`/`smtpd_tls_key_file`. Default none.
    smtpd_tls_chain_files "smtpd_tls_chain_files": Vec<PathBuf> = d(Vec::<String>::new()) => (one convert::paths);
    /// `smtp_sasl_auth_enable`: the SMTP client authenticates to next hops
    /// that `smtp_sasl_password_maps` has a login for. Default false.
    smtp_sasl_auth_enable "smtp_sasl_auth_enable": bool = d(false) => (one convert::boolean);
    /// `smtp_sasl_password_maps`: logins by next hop ([`PasswordMap`]).
    /// Default unset.
    smtp_sasl_password_maps "smtp_sasl_password_maps": Option<PasswordMap> = d("") => (one sasl::password_map);
    /// `smtp_sasl_security_options`: what the SMTP client's AUTH must
    /// avoid without TLS. Default `noplaintext, noanonymous` (as Postfix):
    /// no password over an unencrypted connection.
    smtp_sasl_security_options "smtp_sasl_security_options": Vec<SaslSecurityOption> = d(vec!["noplaintext", "noanonymous"]) => (one sasl::security_options);
    /// `smtp_sasl_tls_security_options`: the same under TLS. Default
    /// `noanonymous` (Postfix's default is `$smtp_sasl_security_options`,
    /// which with PLAIN and LOGIN would never authenticate).
    smtp_sasl_tls_security_options "smtp_sasl_tls_security_options": Vec<SaslSecurityOption> = d(vec!["noanonymous"]) => (one sasl::security_options);
}
