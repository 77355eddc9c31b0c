//! The known keys, their built-in defaults, and key-name suggestions.

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

/// Every top-level key towerpost knows, sorted.
pub(crate) const KEYS: &[&str] = &[
    "anvil_rate_time_unit",
    "authorized_flush_users",
    "bounce_queue_lifetime",
    "bounce_size_limit",
    "default_destination_concurrency_failed_cohort_limit",
    "default_destination_concurrency_limit",
    "default_destination_rate_delay",
    "default_destination_rate_limit",
    "default_destination_recipient_limit",
    "default_transport",
    "defer_transports",
    "delay_warning_time",
    "disable_mime_output_conversion",
    "fast_flush_domains",
    "fast_flush_purge_time",
    "fast_flush_refresh_time",
    "initial_destination_concurrency",
    "listener",
    "mail_name",
    "maximal_backoff_time",
    "maximal_queue_lifetime",
    "message_size_limit",
    "minimal_backoff_time",
    "mydomain",
    "myhostname",
    "mynetworks",
    "qmgr_message_active_limit",
    "queue_directory",
    "queue_run_delay",
    "queue_shard_count",
    "relay_domains",
    "relay_recipient_maps",
    "relayhost",
    "smtp_connect_timeout",
    "smtp_connection_cache_time_limit",
    "smtp_data_done_timeout",
    "smtp_data_init_timeout",
    "smtp_data_xfer_timeout",
    "smtp_helo_timeout",
    "smtp_mail_timeout",
    "smtp_mta_sts_enable",
    "smtp_rcpt_timeout",
    "smtp_sasl_auth_enable",
    "smtp_sasl_password_maps",
    "smtp_sasl_security_options",
    "smtp_sasl_tls_security_options",
    "smtp_tls_CAfile",
    "smtp_tls_policy_maps",
    "smtp_tls_security_level",
    "smtpd_banner",
    "smtpd_client_auth_rate_limit",
    "smtpd_client_connection_count_limit",
    "smtpd_client_connection_rate_limit",
    "smtpd_client_event_limit_exceptions",
    "smtpd_client_ipv4_prefix_length",
    "smtpd_client_ipv6_prefix_length",
    "smtpd_client_message_rate_limit",
    "smtpd_client_new_tls_session_rate_limit",
    "smtpd_client_recipient_rate_limit",
    "smtpd_client_restrictions",
    "smtpd_command_line_limit",
    "smtpd_delay_reject",
    "smtpd_error_sleep_time",
    "smtpd_etrn_restrictions",
    "smtpd_forbid_bare_newline",
    "smtpd_forbid_unauth_pipelining",
    "smtpd_hard_error_limit",
    "smtpd_helo_required",
    "smtpd_helo_restrictions",
    "smtpd_junk_command_limit",
    "smtpd_recipient_limit",
    "smtpd_recipient_restrictions",
    "smtpd_reject_unlisted_recipient",
    "smtpd_relay_restrictions",
    "smtpd_sasl_auth_enable",
    "smtpd_sasl_password_file",
    "smtpd_sender_login_maps",
    "smtpd_sender_restrictions",
    "smtpd_shutdown_grace_time",
    "smtpd_soft_error_limit",
    "smtpd_text_line_limit",
    "smtpd_timeout",
    "smtpd_tls_auth_only",
    "smtpd_tls_cert_file",
    "smtpd_tls_chain_files",
    "smtpd_tls_key_file",
    "smtpd_tls_security_level",
    "soft_bounce",
    "transport",
    "transport_maps",
    "unknown_address_reject_code",
];

/// The keys allowed inside a `[[listener]]` table.
pub(crate) const LISTENER_KEYS: &[&str] = &[
    "address",
    "name",
    "smtpd_client_restrictions",
    "smtpd_helo_restrictions",
    "smtpd_recipient_restrictions",
    "smtpd_relay_restrictions",
    "smtpd_sasl_auth_enable",
    "smtpd_sender_restrictions",
    "smtpd_tls_auth_only",
    "smtpd_tls_security_level",
    "tls",
];

/// The keys allowed inside a `[transport.NAME]` table.
pub(crate) const TRANSPORT_KEYS: &[&str] = &[
    "destination_concurrency_limit",
    "destination_rate_delay",
    "destination_rate_limit",
    "destination_recipient_limit",
    "tls_security_level",
    "type",
];

/// The metadata name of the built-in defaults provider.
pub(crate) const DEFAULTS_NAME: &str = "built-in default";

/// The default of `smtpd_banner`, expanded like any other value.
pub(crate) const DEFAULT_BANNER: &str = "$myhostname ESMTP $mail_name";
/// The default of `smtpd_relay_restrictions` (Postfix 2.10 and later).
pub(crate) const DEFAULT_RELAY_RESTRICTIONS: &[&str] = &[
    "permit_mynetworks",
    "permit_sasl_authenticated",
    "defer_unauth_destination",
];
/// The default of `unknown_address_reject_code` (Postfix's).
pub(crate) const DEFAULT_UNKNOWN_ADDRESS_REJECT_CODE: u16 = 450;
/// The default of `mail_name`.
pub(crate) const DEFAULT_MAIL_NAME: &str = "towerpost";
/// The default of `mynetworks`.
pub(crate) const DEFAULT_MYNETWORKS: &[&str] = &["127.0.0.0/8", "[::1]/128"];
/// The default of `queue_directory`.
pub(crate) const DEFAULT_QUEUE_DIRECTORY: &str = "spool";
/// The default of `queue_shard_count`.
pub(crate) const DEFAULT_QUEUE_SHARD_COUNT: usize = 2;
/// The default of `message_size_limit`.
pub(crate) const DEFAULT_MESSAGE_SIZE_LIMIT: u64 = 10_240_000;
/// The default of `smtpd_recipient_limit`.
pub(crate) const DEFAULT_RECIPIENT_LIMIT: usize = 1000;
/// The default of `smtpd_timeout`, in seconds.
pub(crate) const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// The default of `smtpd_hard_error_limit`.
pub(crate) const DEFAULT_HARD_ERROR_LIMIT: usize = 20;
/// The default of `smtpd_soft_error_limit`.
pub(crate) const DEFAULT_SOFT_ERROR_LIMIT: usize = 10;
/// The default of `smtpd_error_sleep_time`, in seconds.
pub(crate) const DEFAULT_ERROR_SLEEP_SECS: u64 = 1;
/// The default of `smtpd_junk_command_limit`.
pub(crate) const DEFAULT_JUNK_COMMAND_LIMIT: usize = 100;
/// The minimum and default of `smtpd_command_line_limit` (RFC 5321 4.5.3.1.4).
pub(crate) const MIN_COMMAND_LINE_LIMIT: usize = 512;
/// The minimum and default of `smtpd_text_line_limit` (RFC 5321 4.5.3.1.6).
pub(crate) const MIN_TEXT_LINE_LIMIT: usize = 1000;
/// The default of `smtpd_shutdown_grace_time`, in seconds.
pub(crate) const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;
/// The default listener: name and address.
pub(crate) const DEFAULT_LISTENER: (&str, &str) = ("smtp", "127.0.0.1:2525");
/// The default of `queue_run_delay`, in seconds.
pub(crate) const DEFAULT_QUEUE_RUN_DELAY_SECS: u64 = 300;
/// The default of `minimal_backoff_time`, in seconds.
pub(crate) const DEFAULT_MINIMAL_BACKOFF_SECS: u64 = 300;
/// The default of `maximal_backoff_time`, in seconds.
pub(crate) const DEFAULT_MAXIMAL_BACKOFF_SECS: u64 = 4000;
/// The default of `maximal_queue_lifetime` and `bounce_queue_lifetime`, in
/// seconds (5 days).
pub(crate) const DEFAULT_QUEUE_LIFETIME_SECS: u64 = 5 * 24 * 3600;
/// The default of `delay_warning_time`, in seconds (0: no warnings).
pub(crate) const DEFAULT_DELAY_WARNING_SECS: u64 = 0;
/// The default of `smtp_connect_timeout`, in seconds.
pub(crate) const DEFAULT_SMTP_CONNECT_TIMEOUT_SECS: u64 = 30;
/// The default of `smtp_helo_timeout`, `smtp_mail_timeout` and
/// `smtp_rcpt_timeout`, in seconds.
pub(crate) const DEFAULT_SMTP_COMMAND_TIMEOUT_SECS: u64 = 300;
/// The default of `smtp_data_init_timeout`, in seconds.
pub(crate) const DEFAULT_SMTP_DATA_INIT_TIMEOUT_SECS: u64 = 120;
/// The default of `smtp_data_xfer_timeout`, in seconds.
pub(crate) const DEFAULT_SMTP_DATA_XFER_TIMEOUT_SECS: u64 = 180;
/// The default of `smtp_data_done_timeout`, in seconds.
pub(crate) const DEFAULT_SMTP_DATA_DONE_TIMEOUT_SECS: u64 = 600;
/// The default of `smtp_connection_cache_time_limit`, in seconds.
pub(crate) const DEFAULT_SMTP_CACHE_TIME_LIMIT_SECS: u64 = 2;
/// The default of `qmgr_message_active_limit`.
pub(crate) const DEFAULT_MESSAGE_ACTIVE_LIMIT: usize = 20_000;
/// The default of `default_destination_concurrency_limit`.
pub(crate) const DEFAULT_DESTINATION_CONCURRENCY_LIMIT: usize = 20;
/// The default of `default_destination_recipient_limit`.
pub(crate) const DEFAULT_DESTINATION_RECIPIENT_LIMIT: usize = 50;
/// The default of `bounce_size_limit`.
pub(crate) const DEFAULT_BOUNCE_SIZE_LIMIT: u64 = 50_000;
/// The default of `default_transport`.
pub(crate) const DEFAULT_TRANSPORT: &str = "smtp";
/// The default of `smtp_tls_security_level`.
pub(crate) const DEFAULT_SMTP_TLS_SECURITY_LEVEL: &str = "may";
/// The default of `fast_flush_domains`, expanded like any other value.
pub(crate) const DEFAULT_FAST_FLUSH_DOMAINS: &str = "$relay_domains";
/// The default of `fast_flush_refresh_time`, in seconds (12 hours).
pub(crate) const DEFAULT_FAST_FLUSH_REFRESH_SECS: u64 = 12 * 3600;
/// The default of `fast_flush_purge_time`, in seconds (7 days).
pub(crate) const DEFAULT_FAST_FLUSH_PURGE_SECS: u64 = 7 * 24 * 3600;
/// The default of `authorized_flush_users`.
pub(crate) const DEFAULT_AUTHORIZED_FLUSH_USERS: &[&str] = &[crate::flush::ANYONE];
/// The default of `smtpd_client_connection_count_limit` (0: no limit).
pub(crate) const DEFAULT_CLIENT_CONNECTION_COUNT_LIMIT: usize = 50;
/// The default of the `smtpd_client_*_rate_limit` keys (0: no limit).
pub(crate) const DEFAULT_CLIENT_RATE_LIMIT: u32 = 0;
/// The default of `anvil_rate_time_unit`, in seconds.
pub(crate) const DEFAULT_ANVIL_RATE_TIME_UNIT_SECS: u64 = 60;
/// The default of `smtpd_client_event_limit_exceptions`, expanded like any
/// other value.
pub(crate) const DEFAULT_CLIENT_EVENT_LIMIT_EXCEPTIONS: &str = "$mynetworks";
/// The default of `smtpd_client_ipv4_prefix_length` (one address per client).
pub(crate) const DEFAULT_CLIENT_IPV4_PREFIX_LENGTH: u8 = 32;
/// The default of `smtpd_client_ipv6_prefix_length`.
pub(crate) const DEFAULT_CLIENT_IPV6_PREFIX_LENGTH: u8 = 84;
/// The built-in transports: name and `type`. A `[transport.NAME]` table of
/// the same name changes them.
pub(crate) const BUILTIN_TRANSPORTS: &[(&str, &str)] = &[
    ("discard", "discard"),
    ("error", "error"),
    ("relay", "smtp"),
    ("smtp", "smtp"),
];

/// The host name reported by the system, or `localhost` if it is empty.
pub(crate) fn system_hostname() -> String {
    let name = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_owned();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

/// The default of `mydomain` for a given `myhostname`: the host name without
/// its first label, or `localdomain` when it has a single label.
pub(crate) fn domain_of(hostname: &str) -> String {
    match hostname.split_once('.') {
        Some((_, rest)) if !rest.trim_matches('.').is_empty() => rest.to_owned(),
        _ => "localdomain".to_owned(),
    }
}

/// The figment provider of the built-in defaults.
///
/// `mydomain` is absent: its default depends on the effective `myhostname`
/// and is filled in after merging.
pub(crate) struct Defaults;

impl Provider for Defaults {
    fn metadata(&self) -> Metadata {
        Metadata::named(DEFAULTS_NAME)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut d = Dict::new();
        let mut put = |key: &str, value: Value| {
            d.insert(key.to_owned(), value);
        };
        put("myhostname", system_hostname().into());
        put("mail_name", DEFAULT_MAIL_NAME.into());
        put("smtpd_banner", DEFAULT_BANNER.into());
        put("mynetworks", DEFAULT_MYNETWORKS.to_vec().into());
        put("relay_domains", Vec::<String>::new().into());
        put("queue_directory", DEFAULT_QUEUE_DIRECTORY.into());
        put("queue_shard_count", DEFAULT_QUEUE_SHARD_COUNT.into());
        put("message_size_limit", DEFAULT_MESSAGE_SIZE_LIMIT.into());
        put("smtpd_recipient_limit", DEFAULT_RECIPIENT_LIMIT.into());
        put("smtpd_timeout", format!("{DEFAULT_TIMEOUT_SECS}s").into());
        put("smtpd_helo_required", false.into());
        put("smtpd_hard_error_limit", DEFAULT_HARD_ERROR_LIMIT.into());
        put("smtpd_soft_error_limit", DEFAULT_SOFT_ERROR_LIMIT.into());
        put(
            "smtpd_error_sleep_time",
            format!("{DEFAULT_ERROR_SLEEP_SECS}s").into(),
        );
        put(
            "smtpd_junk_command_limit",
            DEFAULT_JUNK_COMMAND_LIMIT.into(),
        );
        put("smtpd_forbid_bare_newline", "normalize".into());
        put("smtpd_forbid_unauth_pipelining", true.into());
        put("smtpd_command_line_limit", MIN_COMMAND_LINE_LIMIT.into());
        put("smtpd_text_line_limit", MIN_TEXT_LINE_LIMIT.into());
        put(
            "smtpd_shutdown_grace_time",
            format!("{DEFAULT_SHUTDOWN_GRACE_SECS}s").into(),
        );
        put("smtpd_tls_cert_file", "".into());
        put("smtpd_tls_key_file", "".into());
        let secs = |n: u64| Value::from(format!("{n}s"));
        put("queue_run_delay", secs(DEFAULT_QUEUE_RUN_DELAY_SECS));
        put("minimal_backoff_time", secs(DEFAULT_MINIMAL_BACKOFF_SECS));
        put("maximal_backoff_time", secs(DEFAULT_MAXIMAL_BACKOFF_SECS));
        put("maximal_queue_lifetime", secs(DEFAULT_QUEUE_LIFETIME_SECS));
        put("bounce_queue_lifetime", secs(DEFAULT_QUEUE_LIFETIME_SECS));
        put("delay_warning_time", secs(DEFAULT_DELAY_WARNING_SECS));
        put(
            "smtp_connect_timeout",
            secs(DEFAULT_SMTP_CONNECT_TIMEOUT_SECS),
        );
        put("smtp_helo_timeout", secs(DEFAULT_SMTP_COMMAND_TIMEOUT_SECS));
        put("smtp_mail_timeout", secs(DEFAULT_SMTP_COMMAND_TIMEOUT_SECS));
        put("smtp_rcpt_timeout", secs(DEFAULT_SMTP_COMMAND_TIMEOUT_SECS));
        put(
            "smtp_data_init_timeout",
            secs(DEFAULT_SMTP_DATA_INIT_TIMEOUT_SECS),
        );
        put(
            "smtp_data_xfer_timeout",
            secs(DEFAULT_SMTP_DATA_XFER_TIMEOUT_SECS),
        );
        put(
            "smtp_data_done_timeout",
            secs(DEFAULT_SMTP_DATA_DONE_TIMEOUT_SECS),
        );
        put(
            "smtp_connection_cache_time_limit",
            secs(DEFAULT_SMTP_CACHE_TIME_LIMIT_SECS),
        );
        put(
            "qmgr_message_active_limit",
            DEFAULT_MESSAGE_ACTIVE_LIMIT.into(),
        );
        put(
            "default_destination_concurrency_limit",
            DEFAULT_DESTINATION_CONCURRENCY_LIMIT.into(),
        );
        put(
            "default_destination_recipient_limit",
            DEFAULT_DESTINATION_RECIPIENT_LIMIT.into(),
        );
        put("bounce_size_limit", DEFAULT_BOUNCE_SIZE_LIMIT.into());
        put("soft_bounce", false.into());
        put("default_destination_rate_delay", "0s".into());
        put("initial_destination_concurrency", 5u64.into());
        put(
            "default_destination_concurrency_failed_cohort_limit",
            1u64.into(),
        );
        put("default_destination_rate_limit", "0".into());
        put("disable_mime_output_conversion", false.into());
        put("relayhost", "".into());
        put("default_transport", DEFAULT_TRANSPORT.into());
        put(
            "smtp_tls_security_level",
            DEFAULT_SMTP_TLS_SECURITY_LEVEL.into(),
        );
        put("defer_transports", Vec::<String>::new().into());
        put("fast_flush_domains", DEFAULT_FAST_FLUSH_DOMAINS.into());
        put(
            "fast_flush_refresh_time",
            secs(DEFAULT_FAST_FLUSH_REFRESH_SECS),
        );
        put("fast_flush_purge_time", secs(DEFAULT_FAST_FLUSH_PURGE_SECS));
        put("smtpd_etrn_restrictions", Vec::<String>::new().into());
        put(
            "authorized_flush_users",
            DEFAULT_AUTHORIZED_FLUSH_USERS.to_vec().into(),
        );
        put(
            "smtpd_client_connection_count_limit",
            DEFAULT_CLIENT_CONNECTION_COUNT_LIMIT.into(),
        );
        for key in [
            "smtpd_client_connection_rate_limit",
            "smtpd_client_message_rate_limit",
            "smtpd_client_recipient_rate_limit",
            "smtpd_client_new_tls_session_rate_limit",
            "smtpd_client_auth_rate_limit",
        ] {
            put(key, DEFAULT_CLIENT_RATE_LIMIT.into());
        }
        put(
            "anvil_rate_time_unit",
            secs(DEFAULT_ANVIL_RATE_TIME_UNIT_SECS),
        );
        put(
            "smtpd_client_event_limit_exceptions",
            DEFAULT_CLIENT_EVENT_LIMIT_EXCEPTIONS.into(),
        );
        put(
            "smtpd_client_ipv4_prefix_length",
            DEFAULT_CLIENT_IPV4_PREFIX_LENGTH.into(),
        );
        put(
            "smtpd_client_ipv6_prefix_length",
            DEFAULT_CLIENT_IPV6_PREFIX_LENGTH.into(),
        );
        let none = || Value::from(Vec::<String>::new());
        for key in [
            "smtpd_client_restrictions",
            "smtpd_helo_restrictions",
            "smtpd_sender_restrictions",
            "smtpd_recipient_restrictions",
            "smtpd_tls_chain_files",
        ] {
            put(key, none());
        }
        put(
            "smtpd_relay_restrictions",
            DEFAULT_RELAY_RESTRICTIONS.to_vec().into(),
        );
        put("smtpd_delay_reject", true.into());
        put("smtpd_reject_unlisted_recipient", true.into());
        for key in [
            "relay_recipient_maps",
            "smtpd_sender_login_maps",
            "smtpd_sasl_password_file",
            "smtp_sasl_password_maps",
        ] {
            put(key, "".into());
        }
        put(
            "unknown_address_reject_code",
            DEFAULT_UNKNOWN_ADDRESS_REJECT_CODE.into(),
        );
        put("smtpd_sasl_auth_enable", false.into());
        put("smtpd_tls_auth_only", true.into());
        put("smtpd_tls_security_level", "".into());
        put("smtp_sasl_auth_enable", false.into());
        put(
            "smtp_sasl_security_options",
            vec!["noplaintext", "noanonymous"].into(),
        );
        put("smtp_sasl_tls_security_options", vec!["noanonymous"].into());
        put("transport_maps", Dict::new().into());
        put("smtp_tls_policy_maps", Dict::new().into());
        put("smtp_tls_CAfile", "".into());
        put("smtp_mta_sts_enable", true.into());
        let mut transports = Dict::new();
        for (name, kind) in BUILTIN_TRANSPORTS {
            let mut table = Dict::new();
            table.insert("type".into(), (*kind).into());
            transports.insert((*name).into(), table.into());
        }
        put("transport", transports.into());
        let mut listener = Dict::new();
        listener.insert("name".into(), DEFAULT_LISTENER.0.into());
        listener.insert("address".into(), DEFAULT_LISTENER.1.into());
        listener.insert("tls".into(), "none".into());
        put("listener", vec![Value::from(listener)].into());
        Ok(Profile::Default.collect(d))
    }
}

/// The closest of `candidates` to `key`, if it is close enough to be a
/// plausible typo.
pub(crate) fn suggest<'a>(key: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let key = key.to_ascii_lowercase().replace('-', "_");
    let (best, distance) = candidates
        .iter()
        .map(|c| (*c, edit_distance(&key, c)))
        .min_by_key(|&(_, d)| d)?;
    let allowed = (key.chars().count() / 3).max(2);
    (distance <= allowed).then_some(best)
}

/// Levenshtein distance, counting an adjacent transposition as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j].
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_and_unique() {
        assert!(KEYS.windows(2).all(|w| w[0] < w[1]));
        assert!(TRANSPORT_KEYS.windows(2).all(|w| w[0] < w[1]));
        assert!(BUILTIN_TRANSPORTS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn defaults_provide_every_key_but_mydomain() {
        let data = Defaults.data().unwrap();
        let keys: Vec<&str> = data[&Profile::Default].keys().map(String::as_str).collect();
        let expected: Vec<&str> = KEYS.iter().copied().filter(|k| *k != "mydomain").collect();
        assert_eq!(keys, expected);
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("smtpd_timeout", "smtpd_timeout"), 0);
        assert_eq!(
            edit_distance("smtpd_recipent_limit", "smtpd_recipient_limit"),
            1
        );
        assert_eq!(edit_distance("mydomian", "mydomain"), 1);
        assert_eq!(edit_distance("abc", ""), 3);
    }

    #[test]
    fn suggestions_find_typos_but_not_unrelated_words() {
        assert_eq!(
            suggest("smtpd_recipent_limit", KEYS),
            Some("smtpd_recipient_limit")
        );
        assert_eq!(suggest("smtpd-timeout", KEYS), Some("smtpd_timeout"));
        assert_eq!(suggest("adress", LISTENER_KEYS), Some("address"));
        assert_eq!(suggest("completely_unrelated", KEYS), None);
    }

    #[test]
    fn mydomain_default_strips_the_first_label() {
        assert_eq!(domain_of("mail.example.com"), "example.com");
        assert_eq!(domain_of("mail"), "localdomain");
        assert_eq!(domain_of("mail."), "localdomain");
    }
}
