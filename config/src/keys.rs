//! The known keys, their built-in defaults, and key-name suggestions.

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

/// Every top-level key towerpost knows, sorted.
pub(crate) const KEYS: &[&str] = &[
    "listener",
    "mail_name",
    "message_size_limit",
    "mydomain",
    "myhostname",
    "mynetworks",
    "queue_directory",
    "queue_shard_count",
    "relay_domains",
    "smtpd_banner",
    "smtpd_command_line_limit",
    "smtpd_error_sleep_time",
    "smtpd_forbid_bare_newline",
    "smtpd_forbid_unauth_pipelining",
    "smtpd_hard_error_limit",
    "smtpd_helo_required",
    "smtpd_junk_command_limit",
    "smtpd_recipient_limit",
    "smtpd_shutdown_grace_time",
    "smtpd_soft_error_limit",
    "smtpd_text_line_limit",
    "smtpd_timeout",
    "smtpd_tls_cert_file",
    "smtpd_tls_key_file",
];

/// The keys allowed inside a `[[listener]]` table.
pub(crate) const LISTENER_KEYS: &[&str] = &["address", "name", "tls"];

/// The metadata name of the built-in defaults provider.
pub(crate) const DEFAULTS_NAME: &str = "built-in default";

/// The default of `smtpd_banner`, expanded like any other value.
pub(crate) const DEFAULT_BANNER: &str = "$myhostname ESMTP $mail_name";
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
