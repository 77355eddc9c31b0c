//! Queue, delivery and routing settings: timers, limits, `relayhost`,
//! `[transport.NAME]` tables, `transport_maps` and [`Config::route`].

mod common;
use common::{error_text, file, load};
use std::collections::BTreeMap;
use std::time::Duration;

use towerpost_config::{
    Config, Nexthop, Route, SmtpTlsLevel, TransportConfig, TransportKind, TransportMapEntry,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn mx(host: &str) -> Nexthop {
    Nexthop {
        host: host.into(),
        port: None,
        mx_lookup: true,
    }
}

fn direct(host: &str, port: Option<u16>) -> Nexthop {
    Nexthop {
        host: host.into(),
        port,
        mx_lookup: false,
    }
}

fn resolved(transport: &str, nexthop: Nexthop) -> Route {
    Route {
        transport: transport.into(),
        nexthop,
    }
}

fn transport(kind: TransportKind, concurrency: usize, recipients: usize) -> TransportConfig {
    TransportConfig {
        kind,
        destination_concurrency_limit: concurrency,
        destination_recipient_limit: recipients,
        tls_security_level: SmtpTlsLevel::May,
        destination_rate_delay: Duration::ZERO,
        destination_rate_limit: None,
    }
}

const ROUTES: &str = r#"
    [transport_maps]
    "customer.example" = "etrn-only:[mail.customer.example]"
    ".customer.example" = "etrn-only:[mail.customer.example]"
    "example.net" = "smtp:[127.0.0.1]:2526"
    "example.org" = ":[relay.example.org]"
    "example.com" = "discard:"
    "*" = "smtp:[fallback.example]"

    [transport.etrn-only]
    type = "smtp"
    destination_concurrency_limit = 5
    "#;

#[test]
fn delivery_defaults_are_postfix_defaults() {
    let config = Config::load_with_env(None, &[]).unwrap();
    assert_eq!(config.queue_run_delay, secs(300));
    assert_eq!(config.minimal_backoff_time, secs(300));
    assert_eq!(config.maximal_backoff_time, secs(4000));
    assert_eq!(config.maximal_queue_lifetime, secs(5 * 86400));
    assert_eq!(config.bounce_queue_lifetime, secs(5 * 86400));
    assert_eq!(config.delay_warning_time, Duration::ZERO);
    assert_eq!(config.smtp_connect_timeout, secs(30));
    assert_eq!(config.smtp_helo_timeout, secs(300));
    assert_eq!(config.smtp_mail_timeout, secs(300));
    assert_eq!(config.smtp_rcpt_timeout, secs(300));
    assert_eq!(config.smtp_data_init_timeout, secs(120));
    assert_eq!(config.smtp_data_xfer_timeout, secs(180));
    assert_eq!(config.smtp_data_done_timeout, secs(600));
    assert_eq!(config.smtp_connection_cache_time_limit, secs(2));
    assert_eq!(config.qmgr_message_active_limit, 20_000);
    assert_eq!(config.default_destination_concurrency_limit, 20);
    assert_eq!(config.default_destination_recipient_limit, 50);
    assert_eq!(config.bounce_size_limit, 50_000);
    assert!(!config.soft_bounce);
    assert_eq!(config.relayhost, None);
    assert_eq!(config.default_transport, "smtp");
    assert_eq!(config.smtp_tls_security_level, SmtpTlsLevel::May);
    assert!(config.defer_transports.is_empty());
    assert!(config.transport_maps.is_empty());
    let expected: BTreeMap<String, TransportConfig> = [
        ("discard", TransportKind::Discard),
        ("error", TransportKind::Error),
        ("relay", TransportKind::Smtp),
        ("smtp", TransportKind::Smtp),
    ]
    .into_iter()
    .map(|(name, kind)| (name.to_owned(), transport(kind, 20, 50)))
    .collect();
    assert_eq!(config.transport, expected);
    assert_eq!(config, Config::default());
}

#[test]
fn delivery_settings_are_read_from_the_file() {
    let config = load(
        r#"
        queue_run_delay = "1m"
        minimal_backoff_time = "1m"
        maximal_backoff_time = "1h"
        maximal_queue_lifetime = "3d"
        bounce_queue_lifetime = "1d"
        delay_warning_time = "4h"
        smtp_connect_timeout = "10s"
        smtp_data_done_timeout = "20m"
        qmgr_message_active_limit = 100
        default_destination_concurrency_limit = "4"
        default_destination_recipient_limit = 10
        bounce_size_limit = 0
        soft_bounce = "yes"
        smtp_tls_security_level = "verify"
        "#,
    )
    .unwrap();
    assert_eq!(config.queue_run_delay, secs(60));
    assert_eq!(config.minimal_backoff_time, secs(60));
    assert_eq!(config.maximal_backoff_time, secs(3600));
    assert_eq!(config.maximal_queue_lifetime, secs(3 * 86400));
    assert_eq!(config.bounce_queue_lifetime, secs(86400));
    assert_eq!(config.delay_warning_time, secs(4 * 3600));
    assert_eq!(config.smtp_connect_timeout, secs(10));
    assert_eq!(config.smtp_data_done_timeout, secs(1200));
    assert_eq!(config.qmgr_message_active_limit, 100);
    assert_eq!(config.default_destination_concurrency_limit, 4);
    assert_eq!(config.default_destination_recipient_limit, 10);
    assert_eq!(config.bounce_size_limit, 0);
    assert!(config.soft_bounce);
    assert_eq!(config.smtp_tls_security_level, SmtpTlsLevel::Verify);
    // The built-in transports take the defaults.
    let smtp = &config.transport["smtp"];
    assert_eq!(smtp.destination_concurrency_limit, 4);
    assert_eq!(smtp.destination_recipient_limit, 10);
    assert_eq!(smtp.tls_security_level, SmtpTlsLevel::Verify);
}

#[test]
fn lifetimes_and_delay_warning_accept_a_bare_zero() {
    for zero in ["0", "\"0\"", "\"0h\"", "\"0s\""] {
        let config = load(&format!(
            "delay_warning_time = {zero}\nmaximal_queue_lifetime = {zero}\n\
             bounce_queue_lifetime = {zero}\n"
        ))
        .unwrap_or_else(|e| panic!("{zero}: {e}"));
        assert_eq!(config.delay_warning_time, Duration::ZERO, "{zero}");
        assert_eq!(config.maximal_queue_lifetime, Duration::ZERO, "{zero}");
        assert_eq!(config.bounce_queue_lifetime, Duration::ZERO, "{zero}");
    }
    // Other numbers still need a unit.
    let error = load("delay_warning_time = 4").unwrap_err();
    assert_eq!(error.keys(), ["delay_warning_time"]);
    let error = load("maximal_queue_lifetime = \"5\"").unwrap_err();
    assert_eq!(error.keys(), ["maximal_queue_lifetime"]);
}

#[test]
fn queue_run_delay_and_smtp_timeouts_must_be_positive() {
    for key in [
        "queue_run_delay",
        "smtp_connect_timeout",
        "smtp_helo_timeout",
        "smtp_mail_timeout",
        "smtp_rcpt_timeout",
        "smtp_data_init_timeout",
        "smtp_data_xfer_timeout",
        "smtp_data_done_timeout",
        "smtp_connection_cache_time_limit",
    ] {
        let text = error_text(&format!("{key} = \"0s\""));
        assert_eq!(
            text,
            format!("FILE: key '{key}': expected a duration greater than zero, found \"0s\"")
        );
    }
}

#[test]
fn limits_must_be_at_least_one() {
    for key in [
        "qmgr_message_active_limit",
        "default_destination_concurrency_limit",
        "default_destination_recipient_limit",
    ] {
        let error = load(&format!("{key} = 0")).unwrap_err();
        assert_eq!(error.keys(), [key], "{error}");
    }
    let error = load("bounce_size_limit = -1").unwrap_err();
    assert_eq!(error.keys(), ["bounce_size_limit"]);
}

#[test]
fn minimal_backoff_above_maximal_is_an_error_naming_both_keys() {
    let text = error_text("minimal_backoff_time = \"2h\"");
    assert_eq!(
        text,
        "FILE: key 'minimal_backoff_time': 2h is greater than maximal_backoff_time (1h 6m 40s)"
    );
    // The key that was set is blamed.
    let text = error_text("maximal_backoff_time = \"1m\"");
    assert_eq!(
        text,
        "FILE: key 'maximal_backoff_time': 1m is less than minimal_backoff_time (5m)"
    );
    let config = load("minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"1h\"").unwrap();
    assert_eq!(config.minimal_backoff_time, config.maximal_backoff_time);
}

#[test]
fn smtp_tls_security_level_dane_is_not_supported() {
    let text = error_text("smtp_tls_security_level = \"dane\"");
    assert_eq!(
        text,
        "FILE: key 'smtp_tls_security_level': \"dane\" is not supported; expected \"none\", \
         \"may\", \"encrypt\", \"verify\" or \"secure\""
    );
    for level in ["fingerprint", "dane-only"] {
        let error = load(&format!("smtp_tls_security_level = \"{level}\"")).unwrap_err();
        assert!(error.to_string().contains("not supported"), "{error}");
    }
    let error = load("smtp_tls_security_level = \"sometimes\"").unwrap_err();
    assert_eq!(error.keys(), ["smtp_tls_security_level"]);
}

#[test]
fn relayhost_accepts_postfix_next_hop_syntax() {
    for (value, expected) in [
        ("relay.example.com", mx("relay.example.com")),
        (
            "Relay.Example.COM.:2525",
            Nexthop {
                port: Some(2525),
                ..mx("relay.example.com")
            },
        ),
        ("[relay.example.com]", direct("relay.example.com", None)),
        (
            "[relay.example.com]:submission",
            direct("relay.example.com", Some(587)),
        ),
        ("[192.0.2.1]", direct("192.0.2.1", None)),
        ("[192.0.2.1]:smtp", direct("192.0.2.1", Some(25))),
        ("[2001:db8::1]:25", direct("2001:db8::1", Some(25))),
        ("[ipv6:2001:DB8::1]", direct("2001:db8::1", None)),
        ("[IPv6:2001:db8::1]:smtps", direct("2001:db8::1", Some(465))),
        (
            "example.com:submissions",
            Nexthop {
                port: Some(465),
                ..mx("example.com")
            },
        ),
    ] {
        let config =
            load(&format!("relayhost = \"{value}\"")).unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(config.relayhost, Some(expected), "{value}");
    }
    assert_eq!(load("relayhost = \"\"").unwrap().relayhost, None);
}

#[test]
fn bad_relayhost_syntax_names_the_key() {
    for value in [
        "192.0.2.1",
        "192.0.2.1:25",
        "2001:db8::1",
        "[relay.example.com",
        "[relay.example.com]25",
        "relay.example.com:0",
        "relay.example.com:65536",
        "relay.example.com:imap",
        "[ipv6:192.0.2.1]",
        "relay example.com",
        "a..b",
    ] {
        let file = file(&format!("relayhost = \"{value}\""));
        let error = Config::load_with_env(Some(file.path()), &[]).unwrap_err();
        assert_eq!(error.keys(), ["relayhost"], "{value}: {error}");
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("{}: key 'relayhost': ", file.path().display())),
            "{text}"
        );
    }
    let text = error_text("relayhost = \"192.0.2.1\"");
    assert!(text.contains("in brackets"), "{text}");
    let text = error_text("relayhost = \"relay.example.com:imap\"");
    assert!(text.contains("submission"), "{text}");
}

#[test]
fn bracketed_nexthop_disables_mx_lookup() {
    let config = load("relayhost = \"[relay.example.com]\"").unwrap();
    let relayhost = config.relayhost.unwrap();
    assert!(!relayhost.mx_lookup);
    assert_eq!(relayhost.to_string(), "[relay.example.com]");
    let config = load("relayhost = \"relay.example.com\"").unwrap();
    assert!(config.relayhost.unwrap().mx_lookup);
    let config = load(ROUTES).unwrap();
    assert!(!config.route("example.net").nexthop.mx_lookup);
    assert!(config.route("example.com").nexthop.mx_lookup);
}

#[test]
fn transport_maps_are_read_into_routes() {
    let config = load(ROUTES).unwrap();
    let routes: Vec<(&str, String)> = config
        .transport_maps
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_string()))
        .collect();
    assert_eq!(
        routes,
        [
            ("*", "smtp:[fallback.example]".to_owned()),
            (
                ".customer.example",
                "etrn-only:[mail.customer.example]".to_owned()
            ),
            (
                "customer.example",
                "etrn-only:[mail.customer.example]".to_owned()
            ),
            ("example.com", "discard:".to_owned()),
            ("example.net", "smtp:[127.0.0.1]:2526".to_owned()),
            ("example.org", ":[relay.example.org]".to_owned()),
        ]
    );
    assert_eq!(
        config.transport_maps["example.org"],
        TransportMapEntry {
            transport: None,
            nexthop: Some(direct("relay.example.org", None)),
        }
    );
    assert_eq!(
        config.transport_maps["example.com"],
        TransportMapEntry {
            transport: Some("discard".into()),
            nexthop: None,
        }
    );
}

#[test]
fn route_matches_exact_domain_then_parents_then_wildcard() {
    let config = load(ROUTES).unwrap();
    let customer = direct("mail.customer.example", None);
    assert_eq!(
        config.route("customer.example"),
        resolved("etrn-only", customer.clone())
    );
    assert_eq!(
        config.route("a.b.customer.example"),
        resolved("etrn-only", customer)
    );
    assert_eq!(
        config.route("example.net"),
        resolved("smtp", direct("127.0.0.1", Some(2526)))
    );
    // ".customer.example" does not match a domain merely ending in it.
    assert_eq!(
        config.route("othercustomer.example"),
        resolved("smtp", direct("fallback.example", None))
    );
    // "example.net" only matches itself, subdomains need ".example.net".
    assert_eq!(
        config.route("sub.example.net"),
        resolved("smtp", direct("fallback.example", None))
    );
}

#[test]
fn closest_parent_entry_wins() {
    let config = load(
        r#"
        [transport_maps]
        ".example" = "smtp:[outer.example]"
        ".inner.example" = "smtp:[inner.example]"
        "#,
    )
    .unwrap();
    assert_eq!(
        config.route("a.inner.example").nexthop.host,
        "inner.example"
    );
    assert_eq!(
        config.route("a.other.example").nexthop.host,
        "outer.example"
    );
    assert_eq!(config.route("inner.example").nexthop.host, "outer.example");
    assert_eq!(config.route("example"), resolved("smtp", mx("example")));
}

#[test]
fn empty_parts_of_a_route_take_the_defaults() {
    let config = load(&format!(
        "default_transport = \"relay\"\nrelayhost = \"[smarthost.example]\"\n{ROUTES}"
    ))
    .unwrap();
    // Empty transport: default_transport, with the given next hop.
    assert_eq!(
        config.route("example.org"),
        resolved("relay", direct("relay.example.org", None))
    );
    // Empty next hop: the recipient domain with MX lookup, not relayhost.
    assert_eq!(
        config.route("example.com"),
        resolved("discard", mx("example.com"))
    );
}

#[test]
fn an_entry_with_neither_part_keeps_relayhost() {
    let config = load(
        r#"
        relayhost = "[smarthost.example]:587"

        [transport_maps]
        "internal.example" = ":"
        "*" = "smtp:[outbound.example]"
        "#,
    )
    .unwrap();
    assert_eq!(
        config.route("internal.example"),
        resolved("smtp", direct("smarthost.example", Some(587)))
    );
    assert_eq!(
        config.route("other.example"),
        resolved("smtp", direct("outbound.example", None))
    );
}

#[test]
fn transport_maps_match_case_insensitively_ignoring_a_trailing_dot() {
    let config = load(
        r#"
        [transport_maps]
        "Customer.EXAMPLE." = "discard:"
        ".Sub.Example" = "error:"
        "#,
    )
    .unwrap();
    assert!(config.transport_maps.contains_key("customer.example"));
    assert!(config.transport_maps.contains_key(".sub.example"));
    for domain in ["customer.example", "CUSTOMER.Example", "customer.example."] {
        assert_eq!(
            config.route(domain),
            resolved("discard", mx("customer.example")),
            "{domain}"
        );
    }
    assert_eq!(config.route("A.SUB.EXAMPLE.").transport, "error");
    assert_eq!(config.route("A.SUB.EXAMPLE.").nexthop, mx("a.sub.example"));
}

#[test]
fn route_falls_back_to_relayhost_then_default_transport_with_mx_lookup() {
    let config = load("relayhost = \"[smarthost.example]:submission\"").unwrap();
    assert_eq!(
        config.route("example.com"),
        resolved("smtp", direct("smarthost.example", Some(587)))
    );
    let config = load("default_transport = \"relay\"").unwrap();
    assert_eq!(
        config.route("Example.COM."),
        resolved("relay", mx("example.com"))
    );
    assert_eq!(config.route("example.com").to_string(), "relay:example.com");
    let config = load(ROUTES).unwrap();
    // transport_maps overrides relayhost; "*" catches everything else.
    assert_eq!(
        config.route("anything.test"),
        resolved("smtp", direct("fallback.example", None))
    );
}

#[test]
fn bad_nexthop_in_transport_maps_names_the_key_and_entry() {
    let text = error_text(
        r#"
        [transport_maps]
        "example.com" = "smtp:[relay.example.com"
        "#,
    );
    assert!(
        text.starts_with("FILE: key 'transport_maps': entry \"example.com\": expected a next hop"),
        "{text}"
    );
    let text = error_text(
        r#"
        [transport_maps]
        "example.com" = "error:5.1.1 no such user"
        "#,
    );
    assert!(text.contains("message texts"), "{text}");
}

#[test]
fn transport_maps_entries_need_a_colon_and_valid_keys() {
    let text = error_text(
        r#"
        [transport_maps]
        "example.com" = "smtp"
        "#,
    );
    assert!(text.contains("expected \"transport:nexthop\""), "{text}");
    let text = error_text(
        r#"
        [transport_maps]
        "user@example.com" = "smtp:"
        "#,
    );
    assert!(
        text.contains("address patterns are not supported"),
        "{text}"
    );
    // An unquoted key with dots is a nested table in TOML.
    let text = error_text(
        r#"
        [transport_maps]
        example.com = "smtp:"
        "#,
    );
    assert!(text.contains("quote keys with dots"), "{text}");
    let error = load(
        r#"
        [transport_maps]
        "Example.com" = "smtp:"
        "example.com" = "discard:"
        "#,
    )
    .unwrap_err();
    assert!(error.to_string().contains("same domain"), "{error}");
    assert_eq!(error.keys(), ["transport_maps"]);
}

#[test]
fn unknown_transport_in_transport_maps_is_an_error() {
    let text = error_text(
        r#"
        [transport_maps]
        "example.com" = "etrn-only:[mail.example.com]"
        "#,
    );
    assert_eq!(
        text,
        "FILE: key 'transport_maps': entry \"example.com\": unknown transport 'etrn-only' \
         (declared: discard, error, relay, smtp; declare others as [transport.NAME] tables)"
    );
}

#[test]
fn unknown_transport_in_defer_transports_is_an_error() {
    let text = error_text("defer_transports = \"smtp, etrn-only\"");
    assert!(
        text.starts_with("FILE: key 'defer_transports': unknown transport 'etrn-only'"),
        "{text}"
    );
    let config = load(&format!("defer_transports = [\"etrn-only\"]\n{ROUTES}")).unwrap();
    assert_eq!(config.defer_transports, ["etrn-only"]);
}

#[test]
fn unknown_default_transport_is_an_error() {
    let text = error_text("default_transport = \"smtpp\"");
    assert!(
        text.starts_with(
            "FILE: key 'default_transport': unknown transport 'smtpp' (did you mean 'smtp'?"
        ),
        "{text}"
    );
    let text = error_text("default_transport = \"smtp:[relay.example.com]\"");
    assert!(text.contains("use relayhost or transport_maps"), "{text}");
}

#[test]
fn transport_table_with_unknown_key_names_it() {
    let text = error_text(
        r#"
        [transport.x]
        type = "smtp"
        destination_concurency_limit = 5
        "#,
    );
    assert_eq!(
        text,
        "FILE: unknown key 'transport.x.destination_concurency_limit' \
         (did you mean 'transport.x.destination_concurrency_limit'?)"
    );
    let error = load("[transport.x]\ntype = \"smtp\"\ncolour = \"blue\"").unwrap_err();
    assert!(error.is_unknown_key());
    assert_eq!(error.keys(), ["transport.x.colour"]);
    // A top-level key written after a [transport.NAME] header.
    let text = error_text("[transport.x]\ntype = \"smtp\"\nsoft_bounce = true");
    assert!(text.contains("top-level keys must come before"), "{text}");
}

#[test]
fn transport_tables_fill_in_the_defaults() {
    let config = load(
        r#"
        default_destination_recipient_limit = 10
        smtp_tls_security_level = "encrypt"

        [transport.etrn-only]
        type = "smtp"
        destination_concurrency_limit = 5
        tls_security_level = "none"

        [transport.blackhole]
        type = "discard"

        [transport.smtp]
        destination_recipient_limit = 100
        "#,
    )
    .unwrap();
    assert_eq!(
        config.transport["etrn-only"],
        TransportConfig {
            kind: TransportKind::Smtp,
            destination_concurrency_limit: 5,
            destination_recipient_limit: 10,
            tls_security_level: SmtpTlsLevel::None,
            destination_rate_delay: Duration::ZERO,
            destination_rate_limit: None,
        }
    );
    assert_eq!(
        config.transport["blackhole"],
        TransportConfig {
            tls_security_level: SmtpTlsLevel::Encrypt,
            ..transport(TransportKind::Discard, 20, 10)
        }
    );
    // A built-in keeps its type when redefined without one.
    assert_eq!(
        config.transport["smtp"],
        TransportConfig {
            tls_security_level: SmtpTlsLevel::Encrypt,
            ..transport(TransportKind::Smtp, 20, 100)
        }
    );
    let names: Vec<&str> = config.transport.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "blackhole",
            "discard",
            "error",
            "etrn-only",
            "relay",
            "smtp"
        ]
    );
}

#[test]
fn transport_table_problems_name_the_key() {
    let text = error_text(
        r#"
        [transport.a]
        destination_concurrency_limit = 5

        [transport.b]
        type = "lmtp"

        [transport.c]
        type = "discard"
        tls_security_level = "may"

        [transport.d]
        type = "smtp"
        destination_recipient_limit = 0
        tls_security_level = "dane"

        [transport."bad name"]
        type = "smtp"
        "#,
    );
    let expected = [
        "FILE: key 'transport.a': missing key 'type' (\"smtp\", \"discard\" or \"error\")",
        "FILE: key 'transport.b.type': expected \"smtp\", \"discard\" or \"error\", found \"lmtp\"",
        "FILE: key 'transport': expected a transport name of letters, digits, '-', '_' and '.', \
         found \"bad name\"",
        "FILE: key 'transport.c.tls_security_level': only allowed with type = \"smtp\", not \
         \"discard\"",
        "FILE: key 'transport.d.destination_recipient_limit': expected an integer of at least \
         1, found 0",
        "FILE: key 'transport.d.tls_security_level': \"dane\" is not supported; expected \
         \"none\", \"may\", \"encrypt\", \"verify\" or \"secure\"",
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{text}");
}

#[test]
fn a_declared_transport_with_problems_is_not_also_unknown() {
    let error = load(
        r#"
        default_transport = "x"

        [transport.x]
        type = "smpt"
        "#,
    )
    .unwrap_err();
    assert_eq!(error.keys(), ["transport.x.type"], "{error}");
}

#[test]
fn scalar_delivery_keys_work_from_the_environment() {
    let config = Config::load_with_env(
        None,
        &[
            ("TOWERPOST_MYDOMAIN", "example.org"),
            ("TOWERPOST_RELAYHOST", "[smtp.$mydomain]:submission"),
            ("TOWERPOST_DEFER_TRANSPORTS", "relay, smtp"),
            ("TOWERPOST_DEFAULT_TRANSPORT", "relay"),
            ("TOWERPOST_SOFT_BOUNCE", "yes"),
            ("TOWERPOST_DELAY_WARNING_TIME", "0h"),
            ("TOWERPOST_MAXIMAL_QUEUE_LIFETIME", "0"),
            ("TOWERPOST_QMGR_MESSAGE_ACTIVE_LIMIT", "500"),
            ("TOWERPOST_SMTP_TLS_SECURITY_LEVEL", "encrypt"),
            ("TOWERPOST_SMTP_CONNECT_TIMEOUT", "1m"),
        ],
    )
    .unwrap();
    assert_eq!(
        config.relayhost,
        Some(direct("smtp.example.org", Some(587)))
    );
    assert_eq!(config.defer_transports, ["relay", "smtp"]);
    assert_eq!(config.default_transport, "relay");
    assert!(config.soft_bounce);
    assert_eq!(config.delay_warning_time, Duration::ZERO);
    assert_eq!(config.maximal_queue_lifetime, Duration::ZERO);
    assert_eq!(config.qmgr_message_active_limit, 500);
    assert_eq!(config.smtp_tls_security_level, SmtpTlsLevel::Encrypt);
    assert_eq!(config.smtp_connect_timeout, secs(60));
    let error = Config::load_with_env(None, &[("TOWERPOST_RELAYHOST", "10.0.0.1")]).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("environment variable TOWERPOST_RELAYHOST: key 'relayhost': "),
        "{error}"
    );
}

#[test]
fn transport_tables_cannot_be_set_from_the_environment() {
    let error = Config::load_with_env(
        None,
        &[
            (
                "TOWERPOST_TRANSPORT_MAPS",
                "example.com smtp:[relay.example.com]",
            ),
            ("TOWERPOST_TRANSPORT", "x"),
        ],
    )
    .unwrap_err();
    let expected = [
        "environment variable TOWERPOST_TRANSPORT: key 'transport': this table cannot be set \
         from the environment; set it in the file",
        "environment variable TOWERPOST_TRANSPORT_MAPS: key 'transport_maps': this table \
         cannot be set from the environment; set it in the file",
    ];
    assert_eq!(error.to_string().lines().collect::<Vec<_>>(), expected);
}

#[test]
fn non_default_settings_render_delivery_keys() {
    let config = load(&format!(
        r#"
        relayhost = "[Smarthost.example]:submission"
        delay_warning_time = "4h"
        soft_bounce = true
        defer_transports = "etrn-only"
        smtp_tls_security_level = "verify"
        default_destination_concurrency_limit = 10
        queue_run_delay = "300s"
        {ROUTES}
        [transport.smtp]
        destination_recipient_limit = 20
        "#
    ))
    .unwrap();
    let rendered: Vec<String> = config
        .non_default_settings()
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    // The built-in transports other than smtp follow the defaults and are
    // not listed; queue_run_delay equals its default.
    assert_eq!(
        rendered,
        [
            "default_destination_concurrency_limit = 10",
            "defer_transports = [\"etrn-only\"]",
            "delay_warning_time = \"4h\"",
            "relayhost = \"[smarthost.example]:587\"",
            "smtp_tls_security_level = \"verify\"",
            "soft_bounce = true",
            "transport = { etrn-only = { type = \"smtp\", destination_concurrency_limit = 5 }, \
             smtp = { type = \"smtp\", destination_recipient_limit = 20 } }",
            "transport_maps = { \"*\" = \"smtp:[fallback.example]\", \
             \".customer.example\" = \"etrn-only:[mail.customer.example]\", \
             \"customer.example\" = \"etrn-only:[mail.customer.example]\", \
             \"example.com\" = \"discard:\", \"example.net\" = \"smtp:[127.0.0.1]:2526\", \
             \"example.org\" = \":[relay.example.org]\" }",
        ]
    );
}

#[test]
fn rendered_settings_load_back_to_the_same_config() {
    let config = load(&format!(
        "relayhost = \"[2001:db8::1]:2525\"\nmaximal_queue_lifetime = \"0s\"\n{ROUTES}"
    ))
    .unwrap();
    let (mut top, mut tables) = (String::new(), String::new());
    for (key, value) in config.non_default_settings() {
        if value.starts_with('{') {
            tables.push_str(&format!("{key} = {value}\n"));
        } else {
            top.push_str(&format!("{key} = {value}\n"));
        }
    }
    let reloaded = load(&format!("{top}{tables}")).unwrap();
    assert_eq!(reloaded, config);
}

#[test]
fn destination_pacing_is_set_by_default_and_per_transport() {
    let config = load(
        r#"
        default_destination_rate_delay = "2s"
        [transport.gmail]
        type = "smtp"
        destination_rate_limit = "600/1h"
        destination_rate_delay = "0"
        [transport_maps]
        "gmail.com" = "gmail:"
        "#,
    )
    .unwrap();
    assert_eq!(
        config.default_destination_rate_delay,
        Duration::from_secs(2)
    );
    let gmail = &config.transport["gmail"];
    assert_eq!(gmail.destination_rate_delay, Duration::ZERO);
    assert_eq!(
        gmail.destination_rate_limit,
        Some(towerpost_config::RateLimit {
            messages: 600,
            per: Duration::from_secs(3600)
        })
    );
    assert_eq!(
        config.transport["smtp"].destination_rate_delay,
        Duration::from_secs(2)
    );
    let err =
        load("[transport.x]\ntype = \"smtp\"\ndestination_rate_limit = \"fast\"\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("transport.x.destination_rate_limit"),
        "{err}"
    );
}

#[test]
fn outbound_tls_policy_keys_are_read_from_file_and_environment() {
    let config = load(
        "smtp_tls_CAfile = \"/etc/towerpost/private-ca.pem\"\n\
         smtp_mta_sts_enable = \"no\"\n\
         [smtp_tls_policy_maps]\n\
         \"example.com\" = \"secure match=mx.example.com\"\n\
         \"[relay.example.net]:submission\" = \"encrypt\"\n",
    )
    .unwrap();
    assert_eq!(
        config.smtp_tls_cafile.as_deref(),
        Some(std::path::Path::new("/etc/towerpost/private-ca.pem"))
    );
    assert!(!config.smtp_mta_sts_enable);
    let policies: Vec<(&str, String)> = config
        .smtp_tls_policy_maps
        .iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    assert_eq!(
        policies,
        [
            ("[relay.example.net]:587", "encrypt".to_owned()),
            ("example.com", "secure match=mx.example.com".to_owned()),
        ]
    );
    // Defaults: MTA-STS on, no CA file, no policies.
    let config = load("").unwrap();
    assert!(config.smtp_mta_sts_enable);
    assert!(config.smtp_tls_cafile.is_none());
    assert!(config.smtp_tls_policy_maps.is_empty());
    // The environment spells the key in capitals; it still arrives.
    let config = common::load_env("", &[("TOWERPOST_SMTP_TLS_CAFILE", "/ca.pem")]).unwrap();
    assert_eq!(
        config.smtp_tls_cafile.as_deref(),
        Some(std::path::Path::new("/ca.pem"))
    );
    // A lower-case spelling in the file is a typo with a suggestion.
    let text = error_text("smtp_tls_cafile = \"/ca.pem\"");
    assert!(text.contains("did you mean 'smtp_tls_CAfile'"), "{text}");
    let text = error_text("[smtp_tls_policy_maps]\n\"example.com\" = \"verify ciphers=high\"");
    assert!(
        text.contains("key 'smtp_tls_policy_maps': entry \"example.com\": attribute \"ciphers\""),
        "{text}"
    );
}
