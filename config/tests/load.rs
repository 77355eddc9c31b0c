//! Loading configurations from files and environments.

mod common;
use common::{load, load_env};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use towerpost_config::{BareNewline, Config, Listener, TlsMode};

fn error_text(contents: &str, env: &[(&str, &str)]) -> String {
    common::error_text_env(contents, env)
}

#[test]
fn defaults_are_postfix_defaults() {
    let config = Config::load_with_env(None, &[]).unwrap();
    assert_eq!(config.mail_name, "towerpost");
    assert_eq!(
        config.smtpd_banner,
        format!("{} ESMTP towerpost", config.myhostname)
    );
    let nets: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    assert_eq!(config.mynetworks, nets);
    assert!(config.relay_domains.is_empty());
    assert_eq!(config.queue_directory, PathBuf::from("spool"));
    assert_eq!(config.queue_shard_count, 2);
    assert_eq!(config.message_size_limit, 10_240_000);
    assert_eq!(config.smtpd_recipient_limit, 1000);
    assert_eq!(config.smtpd_timeout, Duration::from_secs(300));
    assert!(!config.smtpd_helo_required);
    assert_eq!(config.smtpd_hard_error_limit, 20);
    assert_eq!(config.smtpd_soft_error_limit, 10);
    assert_eq!(config.smtpd_error_sleep_time, Duration::from_secs(1));
    assert_eq!(config.smtpd_junk_command_limit, 100);
    assert_eq!(config.smtpd_forbid_bare_newline, BareNewline::Normalize);
    assert!(config.smtpd_forbid_unauth_pipelining);
    assert_eq!(config.smtpd_command_line_limit, 512);
    assert_eq!(config.smtpd_text_line_limit, 1000);
    assert_eq!(config.smtpd_shutdown_grace_time, Duration::from_secs(30));
    assert_eq!(config.smtpd_tls_cert_file, None);
    assert_eq!(config.smtpd_tls_key_file, None);
    assert_eq!(
        config.listener,
        [Listener {
            name: "smtp".into(),
            address: "127.0.0.1:2525".parse().unwrap(),
            tls: TlsMode::None,
            overrides: Default::default(),
        }]
    );
    assert_eq!(config, Config::default());
}

#[test]
fn file_values_override_defaults() {
    let config = load(
        r#"
        myhostname = "mx.example.com"
        message_size_limit = 0
        smtpd_timeout = "5m"
        smtpd_helo_required = "yes"
        smtpd_forbid_unauth_pipelining = false
        smtpd_forbid_bare_newline = "reject"
        queue_directory = "/var/spool/towerpost"
        "#,
    )
    .unwrap();
    assert_eq!(config.myhostname, "mx.example.com");
    assert_eq!(config.mydomain, "example.com");
    assert_eq!(config.smtpd_banner, "mx.example.com ESMTP towerpost");
    assert_eq!(config.message_size_limit, 0);
    assert_eq!(config.smtpd_timeout, Duration::from_secs(300));
    assert!(config.smtpd_helo_required);
    assert!(!config.smtpd_forbid_unauth_pipelining);
    assert_eq!(config.smtpd_forbid_bare_newline, BareNewline::Reject);
    assert_eq!(
        config.queue_directory,
        PathBuf::from("/var/spool/towerpost")
    );
}

#[test]
fn unknown_key_with_typo_names_key_file_and_suggestion() {
    let text = error_text("smtpd_recipent_limit = 10\n", &[]);
    assert_eq!(
        text,
        "FILE: unknown key 'smtpd_recipent_limit' (did you mean 'smtpd_recipient_limit'?)"
    );
    let error = load("smtpd_recipent_limit = 10\n").unwrap_err();
    assert!(error.is_unknown_key());
    assert_eq!(error.keys(), ["smtpd_recipent_limit"]);
}

#[test]
fn unknown_environment_variable_is_an_error_naming_the_variable() {
    let error = Config::load_with_env(None, &[("TOWERPOST_SMTPD_TIMEOUTT", "5m")]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "environment variable TOWERPOST_SMTPD_TIMEOUTT: unknown key 'smtpd_timeoutt' \
         (did you mean TOWERPOST_SMTPD_TIMEOUT?)"
    );
}

#[test]
fn towerpost_config_variable_is_not_a_key() {
    let config =
        Config::load_with_env(None, &[("TOWERPOST_CONFIG", "/etc/towerpost.toml")]).unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn bad_duration_names_the_key_and_needs_a_unit() {
    let text = error_text("smtpd_timeout = \"300\"\n", &[]);
    assert_eq!(
        text,
        "FILE: key 'smtpd_timeout': expected a duration with a unit such as \"300s\" or \"5m\", \
         found \"300\""
    );
    let text = error_text("smtpd_timeout = 300\n", &[]);
    assert!(text.contains("key 'smtpd_timeout'"), "{text}");
    let error = load("smtpd_error_sleep_time = \"soon\"\n").unwrap_err();
    assert!(error.is_invalid_value());
    assert_eq!(error.keys(), ["smtpd_error_sleep_time"]);
}

#[test]
fn durations_accept_humantime_units() {
    let config = load(
        r#"
        smtpd_timeout = "12h"
        smtpd_shutdown_grace_time = "5d"
        smtpd_error_sleep_time = "0s"
        "#,
    )
    .unwrap();
    assert_eq!(config.smtpd_timeout, Duration::from_secs(12 * 3600));
    assert_eq!(
        config.smtpd_shutdown_grace_time,
        Duration::from_secs(5 * 86400)
    );
    assert_eq!(config.smtpd_error_sleep_time, Duration::ZERO);
}

#[test]
fn wrong_type_names_key_and_expected_type() {
    let text = error_text("smtpd_helo_required = 1\n", &[]);
    assert_eq!(
        text,
        "FILE: key 'smtpd_helo_required': expected true/false or \"yes\"/\"no\", found 1"
    );
    let text = error_text("mail_name = 5\n", &[]);
    assert_eq!(text, "FILE: key 'mail_name': expected a string, found 5");
}

#[test]
fn every_problem_is_reported_on_its_own_line() {
    let text = error_text(
        r#"
        smtpd_recipent_limit = 10
        smtpd_timeout = "300"
        queue_shard_count = 0
        "#,
        &[],
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.iter().all(|l| l.starts_with("FILE: ")), "{text}");
    assert!(text.contains("key 'queue_shard_count': expected an integer from 1 to 256, found 0"));
}

#[test]
fn out_of_range_values_are_refused() {
    for (toml, key) in [
        ("queue_shard_count = 257", "queue_shard_count"),
        ("smtpd_command_line_limit = 511", "smtpd_command_line_limit"),
        ("smtpd_text_line_limit = 999", "smtpd_text_line_limit"),
        ("message_size_limit = -1", "message_size_limit"),
        ("smtpd_recipient_limit = 0", "smtpd_recipient_limit"),
        ("smtpd_timeout = \"0s\"", "smtpd_timeout"),
    ] {
        let error = load(toml).unwrap_err();
        assert_eq!(error.keys(), [key], "{toml}: {error}");
    }
}

/// One domain rule (protocol's `valid_domain`, Postfix's
/// `valid_hostname()` over A-labels) for host names and domain lists.
#[test]
fn invalid_domain_names_are_refused() {
    for (toml, key) in [
        ("myhostname = \"-mx.example.com\"", "myhostname"),
        ("myhostname = \"mx!.example.com\"", "myhostname"),
        ("mydomain = \"192.0.2.1\"", "mydomain"),
        ("relay_domains = [\"example-.com\"]", "relay_domains"),
        (
            "fast_flush_domains = [\"ex!ample.com\"]",
            "fast_flush_domains",
        ),
    ] {
        let error = load(toml).unwrap_err();
        assert_eq!(error.keys(), [key], "{toml}: {error}");
    }
    let config = load(
        "myhostname = \"mx_1.b\u{fc}cher.example\"\nrelay_domains = [\".b\u{fc}cher.example\"]",
    )
    .unwrap();
    assert_eq!(config.myhostname, "mx_1.b\u{fc}cher.example");
    assert_eq!(config.relay_domains, [".b\u{fc}cher.example"]);
}

#[test]
fn myhostname_expands_into_smtpd_banner() {
    let config = load(
        r#"
        myhostname = "mx.example.com"
        smtpd_banner = "$myhostname ESMTP ${mail_name} at $(mydomain) $$5"
        "#,
    )
    .unwrap();
    assert_eq!(
        config.smtpd_banner,
        "mx.example.com ESMTP towerpost at example.com $5"
    );
}

#[test]
fn references_expand_in_each_string_of_a_list() {
    let config = load(
        r#"
        mydomain = "example.com"
        relay_domains = ["$mydomain", "other.$mydomain"]
        "#,
    )
    .unwrap();
    assert_eq!(config.relay_domains, ["example.com", "other.example.com"]);
}

#[test]
fn a_referenced_list_is_joined_and_split_again() {
    let config = load(
        r#"
        relay_domains = ["a.example", "b.example"]
        smtpd_banner = "relay for $relay_domains"
        mydomain = "example.com"
        "#,
    )
    .unwrap();
    assert_eq!(config.smtpd_banner, "relay for a.example, b.example");
}

#[test]
fn reference_to_unknown_key_is_an_error() {
    let text = error_text("smtpd_banner = \"$myhostnme ESMTP\"\n", &[]);
    assert_eq!(
        text,
        "FILE: key 'smtpd_banner': reference to unknown key '$myhostnme' \
         (did you mean '$myhostname'?)"
    );
    let error = load("smtpd_banner = \"$myhostnme ESMTP\"\n").unwrap_err();
    assert!(error.is_bad_reference());
}

#[test]
fn reference_cycle_is_an_error_naming_the_keys() {
    let text = error_text(
        r#"
        myhostname = "mx.$mail_name"
        mail_name = "${myhostname}"
        "#,
        &[],
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("reference cycle"), "{text}");
    assert!(text.contains("$mail_name"), "{text}");
    assert!(text.contains("$myhostname"), "{text}");
    let error = load("mail_name = \"$mail_name\"").unwrap_err();
    assert!(error.is_bad_reference());
    assert_eq!(error.keys(), ["mail_name"]);
}

#[test]
fn malformed_reference_is_an_error() {
    let error = load("smtpd_banner = \"costs 5$\"").unwrap_err();
    assert!(error.is_bad_reference());
    assert!(error.to_string().contains("'$$'"), "{error}");
}

#[test]
fn referencing_a_table_is_an_error() {
    let error = load("smtpd_banner = \"$listener\"").unwrap_err();
    assert!(error.to_string().contains("table"), "{error}");
}

#[test]
fn env_var_overrides_file() {
    let config = load_env(
        "message_size_limit = 1000\nmail_name = \"file\"\n",
        &[
            ("TOWERPOST_MESSAGE_SIZE_LIMIT", "5000"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap();
    assert_eq!(config.message_size_limit, 5000);
    assert_eq!(config.mail_name, "file");
}

#[test]
fn env_var_errors_name_the_variable() {
    let error = Config::load_with_env(None, &[("TOWERPOST_SMTPD_TIMEOUT", "300")]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "environment variable TOWERPOST_SMTPD_TIMEOUT: key 'smtpd_timeout': expected a duration \
         with a unit such as \"300s\" or \"5m\", found \"300\""
    );
}

#[test]
fn env_values_use_postfix_syntax() {
    let config = Config::load_with_env(
        None,
        &[
            ("TOWERPOST_SMTPD_HELO_REQUIRED", "yes"),
            ("TOWERPOST_MYNETWORKS", "[::1]/128, 10.0.0.0/8"),
            ("TOWERPOST_MYHOSTNAME", "mx.example.org"),
            ("TOWERPOST_SMTPD_BANNER", "$mydomain ready"),
            (
                "TOWERPOST_LISTENER",
                r#"[{name = "a", address = "127.0.0.1:25"}]"#,
            ),
        ],
    )
    .unwrap();
    assert!(config.smtpd_helo_required);
    assert_eq!(config.mynetworks.len(), 2);
    assert_eq!(config.smtpd_banner, "example.org ready");
    assert_eq!(config.listener[0].name, "a");
}

#[test]
fn list_given_as_a_string_splits_on_commas_and_whitespace() {
    let config = load(r#"relay_domains = "a.example, b.example c.example""#).unwrap();
    assert_eq!(
        config.relay_domains,
        ["a.example", "b.example", "c.example"]
    );
    let config = load(r#"mynetworks = "127.0.0.0/8, [::1]/128 192.0.2.0/24""#).unwrap();
    let nets: Vec<String> = config.mynetworks.iter().map(ToString::to_string).collect();
    assert_eq!(nets, ["127.0.0.0/8", "::1/128", "192.0.2.0/24"]);
}

#[test]
fn mynetworks_accepts_brackets_and_plain_addresses() {
    let config = load(r#"mynetworks = ["[2001:db8::]/32", "192.0.2.1", "[::1]"]"#).unwrap();
    let nets: Vec<String> = config.mynetworks.iter().map(ToString::to_string).collect();
    assert_eq!(nets, ["2001:db8::/32", "192.0.2.1/32", "::1/128"]);
    let error = load(r#"mynetworks = "10.1.2.3/8""#).unwrap_err();
    assert_eq!(error.keys(), ["mynetworks"]);
}

#[test]
fn forbid_bare_newline_no_is_refused_because_of_smuggling() {
    let text = error_text("smtpd_forbid_bare_newline = \"no\"\n", &[]);
    assert!(
        text.starts_with("FILE: key 'smtpd_forbid_bare_newline': "),
        "{text}"
    );
    assert!(text.contains("SMTP smuggling"), "{text}");
    let config = load("smtpd_forbid_bare_newline = \"yes\"\n").unwrap();
    assert_eq!(config.smtpd_forbid_bare_newline, BareNewline::Normalize);
}

#[test]
fn listener_table_replaces_the_default() {
    let config = load(
        r#"
        smtpd_tls_cert_file = "/etc/cert.pem"
        smtpd_tls_key_file = "/etc/key.pem"

        [[listener]]
        name = "submission"
        address = "[::1]:587"

        [[listener]]
        name = "smtps"
        address = "127.0.0.1:465"
        tls = "implicit"
        "#,
    )
    .unwrap();
    let expected = [
        Listener {
            name: "submission".into(),
            address: "[::1]:587".parse::<SocketAddr>().unwrap(),
            tls: TlsMode::None,
            overrides: Default::default(),
        },
        Listener {
            name: "smtps".into(),
            address: "127.0.0.1:465".parse().unwrap(),
            tls: TlsMode::Implicit,
            overrides: Default::default(),
        },
    ];
    assert_eq!(config.listener, expected);
    assert_eq!(
        config.smtpd_tls_cert_file.as_deref(),
        Some(std::path::Path::new("/etc/cert.pem"))
    );
}

#[test]
fn starttls_listener_without_cert_files_is_an_error() {
    let text = error_text(
        r#"
        [[listener]]
        name = "smtp"
        address = "127.0.0.1:25"
        tls = "starttls"
        "#,
        &[],
    );
    assert!(text.starts_with("FILE: listener 'smtp'"), "{text}");
    assert!(text.contains("smtpd_tls_cert_file"), "{text}");
    assert!(text.contains("smtpd_tls_key_file"), "{text}");
}

#[test]
fn top_level_key_after_a_listener_table_gets_a_hint() {
    let error = load(
        r#"
        [[listener]]
        name = "smtp"
        address = "127.0.0.1:25"
        smtpd_timeout = "5m"
        "#,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("top-level keys must come before the first [[listener]] table"),
        "{error}"
    );
}

#[test]
fn cert_without_key_is_an_error() {
    let error = load("smtpd_tls_cert_file = \"/etc/cert.pem\"").unwrap_err();
    assert_eq!(error.keys(), ["smtpd_tls_cert_file"]);
    assert!(error.to_string().contains("smtpd_tls_key_file"), "{error}");
}

#[test]
fn listener_problems_are_reported() {
    let text = error_text(
        r#"
        [[listener]]
        name = "a"
        adress = "127.0.0.1:25"

        [[listener]]
        name = "b"
        address = "127.0.0.1:26"
        tls = "sometimes"

        [[listener]]
        name = "b"
        address = "127.0.0.1:27"

        [[listener]]
        name = "c"
        address = "127.0.0.1:26"

        [[listener]]
        name = "d"
        address = "localhost"
        "#,
        &[],
    );
    let expected = [
        "FILE: listener 'a': unknown key 'adress' (did you mean 'address'?)",
        "FILE: listener 'a': missing key 'address' (such as \"127.0.0.1:25\")",
        "FILE: listener 'b': key 'tls': expected \"none\", \"starttls\" or \"implicit\", found \"sometimes\"",
        "FILE: listener 'b': name 'b' is already used by an earlier listener",
        "FILE: listener 'c': address 127.0.0.1:26 is already used by listener 'b'",
        "FILE: listener 'd': key 'address': expected a socket address such as \"127.0.0.1:25\" or \"[::1]:25\", found \"localhost\"",
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{text}");
}

#[test]
fn duplicate_listener_addresses_are_an_error() {
    let error = load(
        r#"
        [[listener]]
        name = "a"
        address = "127.0.0.1:25"

        [[listener]]
        name = "b"
        address = "127.0.0.1:25"
        "#,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("listener 'b': address 127.0.0.1:25 is already used by listener 'a'"),
        "{error}"
    );
}

#[test]
fn missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let error = Config::load_with_env(Some(&path), &[]).unwrap_err();
    assert!(error.is_file_error());
    assert!(
        error.to_string().starts_with(&format!(
            "{}: cannot read the configuration file",
            path.display()
        )),
        "{error}"
    );
}

#[test]
fn invalid_toml_is_an_error_naming_the_file() {
    let text = error_text("smtpd_timeout = \n", &[]);
    assert!(text.starts_with("FILE: "), "{text}");
    assert!(text.contains("line 1"), "{text}");
}

#[test]
fn non_default_settings_lists_exactly_changed_keys() {
    let config = load(
        r#"
        myhostname = "mx.example.com"
        message_size_limit = 5000
        smtpd_timeout = "300s"
        smtpd_helo_required = "yes"
        "#,
    )
    .unwrap();
    let settings = config.non_default_settings();
    // smtpd_timeout is set but equal to the default; mydomain and the banner
    // follow myhostname as their defaults do.
    assert_eq!(
        settings,
        [
            ("message_size_limit".to_owned(), "5000".to_owned()),
            ("myhostname".to_owned(), "\"mx.example.com\"".to_owned()),
            ("smtpd_helo_required".to_owned(), "true".to_owned()),
        ]
    );
}

#[test]
fn non_default_settings_render_as_toml() {
    let mut config = Config {
        relay_domains: vec!["example.com".into()],
        smtpd_timeout: Duration::from_secs(600),
        smtpd_banner: "say \"hi\"".into(),
        smtpd_tls_cert_file: Some("/etc/cert.pem".into()),
        ..Config::default()
    };
    config.listener[0].tls = TlsMode::StartTls;
    let settings = config.non_default_settings();
    let rendered: Vec<String> = settings.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    // fast_flush_domains defaults to $relay_domains; this config keeps it
    // empty, so it differs from its default.
    assert_eq!(
        rendered,
        [
            "fast_flush_domains = []",
            "listener = [{ name = \"smtp\", address = \"127.0.0.1:2525\", tls = \"starttls\" }]",
            "relay_domains = [\"example.com\"]",
            "smtpd_banner = \"say \\\"hi\\\"\"",
            "smtpd_timeout = \"10m\"",
            "smtpd_tls_cert_file = \"/etc/cert.pem\"",
        ]
    );
}

#[test]
fn default_config_has_no_non_default_settings() {
    assert!(Config::default().non_default_settings().is_empty());
}

/// docs/config-reference.md is generated from the key table; it must list
/// every key. `TOWERPOST_BLESS=1 cargo test -p towerpost-config` rewrites it.
#[test]
fn the_key_reference_in_docs_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config-reference.md");
    let generated = towerpost_config::Config::reference_markdown();
    for key in towerpost_config::Config::key_names() {
        assert!(generated.contains(&format!("| `{key}` |")), "{key} missing");
    }
    if std::env::var_os("TOWERPOST_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/config-reference.md is out of date: run `TOWERPOST_BLESS=1 cargo test -p \
         towerpost-config --test load the_key_reference`"
    );
}
