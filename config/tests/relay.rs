//! Relay and recipient restrictions, AUTH and per-listener overrides.

mod common;
use common::{error_text, file, load};

use towerpost_config::{Config, Restriction, SmtpdTlsLevel};

#[test]
fn defaults_are_postfix_2_10_relay_restrictions() {
    let config = Config::default();
    assert_eq!(
        config.smtpd_relay_restrictions,
        [
            Restriction::PermitMynetworks,
            Restriction::PermitSaslAuthenticated,
            Restriction::DeferUnauthDestination
        ]
    );
    assert!(config.smtpd_recipient_restrictions.is_empty());
    assert!(config.smtpd_delay_reject);
    assert!(config.smtpd_reject_unlisted_recipient);
    assert_eq!(config.unknown_address_reject_code, 450);
    assert!(!config.smtpd_sasl_auth_enable);
    assert!(
        config.smtpd_tls_auth_only,
        "AUTH is refused before TLS by default"
    );
}

#[test]
fn listener_overrides_replace_top_level_settings() {
    let config = load(
        r#"
smtpd_recipient_restrictions = "reject_non_fqdn_recipient"
smtpd_sasl_password_file = "/etc/towerpost/passwd"
smtpd_tls_cert_file = "/c.pem"
smtpd_tls_key_file = "/k.pem"

[[listener]]
name = "smtp"
address = "127.0.0.1:25"

[[listener]]
name = "submission"
address = "127.0.0.1:587"
tls = "starttls"
smtpd_tls_security_level = "encrypt"
smtpd_sasl_auth_enable = true
smtpd_recipient_restrictions = ["permit_sasl_authenticated", "reject"]
"#,
    )
    .unwrap();
    let smtp = config.smtpd_policy(&config.listener[0]);
    assert!(!smtp.sasl_auth_enable);
    assert_eq!(
        smtp.recipient_restrictions,
        [Restriction::RejectNonFqdnRecipient]
    );
    let submission = config.smtpd_policy(&config.listener[1]);
    assert!(submission.sasl_auth_enable && submission.tls_auth_only);
    assert_eq!(submission.tls_security_level, SmtpdTlsLevel::Encrypt);
    assert_eq!(
        submission.recipient_restrictions,
        [Restriction::PermitSaslAuthenticated, Restriction::Reject]
    );
    assert_eq!(
        submission.relay_restrictions,
        config.smtpd_relay_restrictions
    );
}

#[test]
fn auth_without_a_password_file_is_refused() {
    let text = error_text("smtpd_sasl_auth_enable = true\n");
    assert_eq!(
        text,
        "built-in default: key 'smtpd_sasl_password_file': AUTH is enabled on listener 'smtp' \
         but no password file is set; create one with `towerpost passwd add USER` and set \
         smtpd_sasl_password_file"
    );
    let text = error_text("smtp_sasl_auth_enable = true\n");
    assert!(
        text.contains("key 'smtp_sasl_auth_enable': set without smtp_sasl_password_maps"),
        "{text}"
    );
}

#[test]
fn mandatory_tls_on_a_plain_listener_is_refused() {
    let text = error_text(
        "[[listener]]\nname = \"smtp\"\naddress = \"127.0.0.1:25\"\nsmtpd_tls_security_level = \"encrypt\"\n",
    );
    assert!(
        text.contains("listener 'smtp': smtpd_tls_security_level = \"encrypt\" needs tls"),
        "{text}"
    );
}

#[test]
fn restriction_problems_name_the_key() {
    let text = error_text("smtpd_recipient_restrictions = \"permit_mynetwork, reject\"\n");
    assert_eq!(
        text,
        "FILE: key 'smtpd_recipient_restrictions': unknown restriction 'permit_mynetwork' (did \
         you mean 'permit_mynetworks'?)"
    );
    let text = error_text("smtpd_client_restrictions = \"check_etrn_access /x\"\n");
    assert!(text.contains("cannot be used in this list"), "{text}");
    let text = error_text("smtpd_etrn_restrictions = \"reject_unauth_destination\"\n");
    assert!(
        text.contains("cannot be used in smtpd_etrn_restrictions"),
        "{text}"
    );
    let text = error_text("smtpd_delay_reject = false\n");
    assert!(
        text.contains("key 'smtpd_delay_reject': only yes is supported"),
        "{text}"
    );
}

#[test]
fn address_tables_are_read_and_looked_up() {
    let senders = file("spam@example.org REJECT\n<> OK\n");
    let logins = file("alice@example.org alice\n@example.net bob, carol\n");
    let config = load(&format!(
        "smtpd_sender_restrictions = \"check_sender_access {}\"\nsmtpd_sender_login_maps = \"{}\"\n",
        senders.path().display(),
        logins.path().display()
    ))
    .unwrap();
    let Restriction::CheckSenderAccess(table) = &config.smtpd_sender_restrictions[0] else {
        panic!("{:?}", config.smtpd_sender_restrictions);
    };
    assert!(table.lookup_address("SPAM@example.org").is_some());
    assert!(table.lookup_address("").is_some());
    let map = config.smtpd_sender_login_maps.as_ref().unwrap();
    assert_eq!(map.lookup("x@example.net"), Some("bob, carol"));
    let bad = file("not-an-address x\n");
    let text = error_text(&format!(
        "relay_recipient_maps = \"{}\"\n",
        bad.path().display()
    ));
    assert!(text.contains(":1: expected \"user@example.com\""), "{text}");
}

#[test]
fn config_show_lists_changed_restrictions() {
    let config = load("smtpd_relay_restrictions = \"permit_mynetworks, reject\"\n").unwrap();
    let shown = config.non_default_settings();
    assert!(
        shown.contains(&(
            "smtpd_relay_restrictions".to_owned(),
            "[\"permit_mynetworks\", \"reject\"]".to_owned()
        )),
        "{shown:?}"
    );
}
