//! The known keys, their built-in defaults, and key-name suggestions.

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

/// Every top-level key towerpost knows, sorted (from the key table).
pub(crate) fn keys() -> &'static [&'static str] {
    static KEYS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        let mut keys: Vec<&str> = crate::TABLE.iter().map(|k| k.key).collect();
        keys.sort_unstable();
        keys
    });
    &KEYS
}

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
    "smtpd_upstream_proxy_protocol",
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
/// The minimum and default of `smtpd_command_line_limit` (RFC 5321 4.5.3.1.4).
pub(crate) const MIN_COMMAND_LINE_LIMIT: usize = 512;
/// The minimum and default of `smtpd_text_line_limit` (RFC 5321 4.5.3.1.6).
pub(crate) const MIN_TEXT_LINE_LIMIT: usize = 1000;
/// The default listener: name and address.
pub(crate) const DEFAULT_LISTENER: (&str, &str) = ("smtp", "127.0.0.1:2525");
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
    // A name that Postfix's get_hostname() would refuse falls back rather
    // than failing the embedded default on an oddly named machine.
    if !towerpost_protocol::valid_domain(&name) {
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
        let defaults = crate::default_values()
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect();
        Ok(Profile::Default.collect(defaults))
    }
}

/// The default `[transport.NAME]` tables: the built-in transports.
pub(crate) fn builtin_transport_table() -> Dict {
    let mut transports = Dict::new();
    for (name, kind) in BUILTIN_TRANSPORTS {
        let mut table = Dict::new();
        table.insert("type".into(), (*kind).into());
        transports.insert((*name).into(), table.into());
    }
    transports
}

/// The default `[[listener]]` array: one plain listener.
pub(crate) fn default_listener_table() -> Vec<Value> {
    let mut listener = Dict::new();
    listener.insert("name".into(), DEFAULT_LISTENER.0.into());
    listener.insert("address".into(), DEFAULT_LISTENER.1.into());
    listener.insert("tls".into(), "none".into());
    vec![Value::from(listener)]
}

/// The closest of `candidates` to `key`, if it is close enough to be a
/// plausible typo.
pub(crate) fn suggest<'a>(key: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let key = key.to_ascii_lowercase().replace('-', "_");
    let len = key.chars().count();
    let allowed = (len / 3).max(2);
    // The distance is at least the difference in length: skipping those
    // keeps a very long unknown name (found by the config fuzz check: 70 KB
    // took 1.8 s) from costing length × every key.
    let (best, distance) = candidates
        .iter()
        .filter(|c| c.chars().count().abs_diff(len) <= allowed)
        .map(|c| (*c, edit_distance(&key, c)))
        .min_by_key(|&(_, d)| d)?;
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
        assert!(keys().windows(2).all(|w| w[0] < w[1]));
        assert!(TRANSPORT_KEYS.windows(2).all(|w| w[0] < w[1]));
        assert!(BUILTIN_TRANSPORTS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn defaults_provide_every_key_but_mydomain() {
        let data = Defaults.data().unwrap();
        let provided: Vec<&str> = data[&Profile::Default].keys().map(String::as_str).collect();
        let expected: Vec<&str> = keys()
            .iter()
            .copied()
            .filter(|k| *k != "mydomain")
            .collect();
        assert_eq!(provided, expected);
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
    fn a_very_long_name_is_compared_with_no_key() {
        // Found by the config fuzz check: 70 KB used to be compared with
        // every key (1.8 s). No key is within a third of its length.
        let long = "k".repeat(70_000);
        assert_eq!(suggest(&long, &["smtpd_timeout", "myhostname"]), None);
        assert_eq!(
            suggest("smtpd_timout", &["smtpd_timeout"]),
            Some("smtpd_timeout")
        );
    }

    #[test]
    fn suggestions_find_typos_but_not_unrelated_words() {
        assert_eq!(
            suggest("smtpd_recipent_limit", keys()),
            Some("smtpd_recipient_limit")
        );
        assert_eq!(suggest("smtpd-timeout", keys()), Some("smtpd_timeout"));
        assert_eq!(suggest("adress", LISTENER_KEYS), Some("address"));
        assert_eq!(suggest("completely_unrelated", keys()), None);
    }

    #[test]
    fn mydomain_default_strips_the_first_label() {
        assert_eq!(domain_of("mail.example.com"), "example.com");
        assert_eq!(domain_of("mail"), "localdomain");
        assert_eq!(domain_of("mail."), "localdomain");
    }
}
