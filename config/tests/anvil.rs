//! Client connection and rate limits (anvil): smtpd_client_*_limit,
//! anvil_rate_time_unit, smtpd_client_event_limit_exceptions and the client
//! prefix lengths.

mod common;
use common::{error_text, load};
use std::time::Duration;

use towerpost_config::Config;

fn nets(config_nets: &[ipnet::IpNet]) -> Vec<String> {
    config_nets.iter().map(ToString::to_string).collect()
}

fn non_default(config: &Config) -> Vec<String> {
    config
        .non_default_settings()
        .into_iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect()
}

#[test]
fn defaults_are_postfix_defaults() {
    let config = Config::load_with_env(None, &[]).unwrap();
    assert_eq!(config.smtpd_client_connection_count_limit, 50);
    assert_eq!(config.smtpd_client_connection_rate_limit, 0);
    assert_eq!(config.smtpd_client_message_rate_limit, 0);
    assert_eq!(config.smtpd_client_recipient_rate_limit, 0);
    assert_eq!(config.smtpd_client_new_tls_session_rate_limit, 0);
    assert_eq!(config.smtpd_client_auth_rate_limit, 0);
    assert_eq!(config.anvil_rate_time_unit, Duration::from_secs(60));
    assert_eq!(
        config.smtpd_client_event_limit_exceptions,
        config.mynetworks
    );
    assert_eq!(
        nets(&config.smtpd_client_event_limit_exceptions),
        ["127.0.0.0/8", "::1/128"]
    );
    assert_eq!(config.smtpd_client_ipv4_prefix_length, 32);
    assert_eq!(config.smtpd_client_ipv6_prefix_length, 84);
    assert!(non_default(&config).is_empty());
}

#[test]
fn set_values_are_used_and_listed() {
    let config = load(
        r#"
        smtpd_client_connection_count_limit = 0
        smtpd_client_connection_rate_limit = 30
        smtpd_client_message_rate_limit = "100"
        smtpd_client_recipient_rate_limit = 200
        smtpd_client_new_tls_session_rate_limit = 10
        smtpd_client_auth_rate_limit = 5
        anvil_rate_time_unit = "2m"
        smtpd_client_ipv4_prefix_length = 24
        smtpd_client_ipv6_prefix_length = 64
        "#,
    )
    .unwrap();
    assert_eq!(config.smtpd_client_connection_count_limit, 0);
    assert_eq!(config.smtpd_client_connection_rate_limit, 30);
    assert_eq!(config.smtpd_client_message_rate_limit, 100);
    assert_eq!(config.smtpd_client_recipient_rate_limit, 200);
    assert_eq!(config.smtpd_client_new_tls_session_rate_limit, 10);
    assert_eq!(config.smtpd_client_auth_rate_limit, 5);
    assert_eq!(config.anvil_rate_time_unit, Duration::from_secs(120));
    assert_eq!(config.smtpd_client_ipv4_prefix_length, 24);
    assert_eq!(config.smtpd_client_ipv6_prefix_length, 64);
    assert_eq!(
        non_default(&config),
        [
            "anvil_rate_time_unit = \"2m\"",
            "smtpd_client_auth_rate_limit = 5",
            "smtpd_client_connection_count_limit = 0",
            "smtpd_client_connection_rate_limit = 30",
            "smtpd_client_ipv4_prefix_length = 24",
            "smtpd_client_ipv6_prefix_length = 64",
            "smtpd_client_message_rate_limit = 100",
            "smtpd_client_new_tls_session_rate_limit = 10",
            "smtpd_client_recipient_rate_limit = 200",
        ]
    );
}

#[test]
fn exceptions_follow_mynetworks() {
    let config = load(r#"mynetworks = "192.0.2.0/24, [2001:db8::]/32 198.51.100.7""#).unwrap();
    assert_eq!(
        nets(&config.smtpd_client_event_limit_exceptions),
        ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7/32"]
    );
    // Following mynetworks is the default, so it is not listed.
    let keys: Vec<String> = config
        .non_default_settings()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["mynetworks"]);

    let env = [("TOWERPOST_MYNETWORKS", "10.0.0.0/8")];
    let config = Config::load_with_env(None, &env).unwrap();
    assert_eq!(
        nets(&config.smtpd_client_event_limit_exceptions),
        ["10.0.0.0/8"]
    );

    // A reference can extend it.
    let config = load(
        r#"
        mynetworks = "192.0.2.0/24"
        smtpd_client_event_limit_exceptions = "$mynetworks [::1]"
        "#,
    )
    .unwrap();
    assert_eq!(
        nets(&config.smtpd_client_event_limit_exceptions),
        ["192.0.2.0/24", "::1/128"]
    );
}

#[test]
fn an_explicit_list_overrides_mynetworks() {
    let config = load(
        r#"
        mynetworks = "192.0.2.0/24"
        smtpd_client_event_limit_exceptions = ["[2001:db8::]/32", "203.0.113.5", "[::1]"]
        "#,
    )
    .unwrap();
    assert_eq!(
        nets(&config.smtpd_client_event_limit_exceptions),
        ["2001:db8::/32", "203.0.113.5/32", "::1/128"]
    );
    assert!(
        non_default(&config).contains(
            &"smtpd_client_event_limit_exceptions = [\"[2001:db8::]/32\", \"203.0.113.5/32\", \
          \"[::1]/128\"]"
                .to_owned()
        )
    );

    // An empty list exempts nobody.
    let config = load("smtpd_client_event_limit_exceptions = []").unwrap();
    assert!(config.smtpd_client_event_limit_exceptions.is_empty());
    assert!(non_default(&config).contains(&"smtpd_client_event_limit_exceptions = []".to_owned()));
}

#[test]
fn bad_exceptions_name_the_key() {
    let text = error_text("smtpd_client_event_limit_exceptions = \"10.1.2.3/8\"\n");
    assert!(
        text.contains("key 'smtpd_client_event_limit_exceptions'"),
        "{text}"
    );
    assert!(text.contains("host bits set"), "{text}");
    // An invalid mynetworks is reported once, not again through the default
    // of smtpd_client_event_limit_exceptions.
    let error = load("mynetworks = \"hash:/etc/postfix/network_table\"").unwrap_err();
    assert_eq!(error.keys(), ["mynetworks"], "{error}");
}

#[test]
fn prefix_length_bounds_are_checked() {
    for (key, good, bad) in [
        ("smtpd_client_ipv4_prefix_length", [1, 32], [0, 33]),
        ("smtpd_client_ipv6_prefix_length", [1, 128], [0, 129]),
    ] {
        for n in good {
            assert!(load(&format!("{key} = {n}")).is_ok(), "{key} = {n}");
        }
        let max = good[1];
        for n in bad {
            let error = load(&format!("{key} = {n}")).unwrap_err();
            assert_eq!(error.keys(), [key], "{error}");
            let text = error_text(&format!("{key} = {n}\n"));
            assert!(
                text.contains(&format!(
                    "key '{key}': expected an integer from 1 to {max}, found"
                )),
                "{text}"
            );
        }
    }
}

#[test]
fn bad_limits_name_the_key() {
    for (line, key) in [
        (
            "smtpd_client_connection_count_limit = -1",
            "smtpd_client_connection_count_limit",
        ),
        (
            "smtpd_client_message_rate_limit = 4294967296",
            "smtpd_client_message_rate_limit",
        ),
        (
            "smtpd_client_auth_rate_limit = \"many\"",
            "smtpd_client_auth_rate_limit",
        ),
        ("anvil_rate_time_unit = \"0s\"", "anvil_rate_time_unit"),
        ("anvil_rate_time_unit = 60", "anvil_rate_time_unit"),
    ] {
        let error = load(line).unwrap_err();
        assert_eq!(error.keys(), [key], "{line}: {error}");
    }
    let env = [("TOWERPOST_SMTPD_CLIENT_IPV6_PREFIX_LENGTH", "200")];
    let error = Config::load_with_env(None, &env).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("TOWERPOST_SMTPD_CLIENT_IPV6_PREFIX_LENGTH"),
        "{error}"
    );
    assert_eq!(error.keys(), ["smtpd_client_ipv6_prefix_length"]);
}
