//! Relay restrictions: towerpost is never an open relay. Clients outside
//! `mynetworks` (127.0.0.2 here; `mynetworks` is 127.0.0.1/32) may send
//! only to `relay_domains`, whatever form the address takes.

use std::process::Command;

use integration_tests::{Client, Server, have_tool};

const RELAY: &str = r#"
mynetworks = "127.0.0.1/32"
relay_domains = ["relay.test"]
"#;

/// A transaction from 127.0.0.2: the reply to each RCPT.
fn rcpt_replies(server: &Server, recipients: &[&str]) -> Vec<String> {
    let mut c = Client::connect_from(server.addr(), "127.0.0.2");
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<sender@client.test>"), "250 2.1.0 Ok");
    let replies = recipients
        .iter()
        .map(|r| c.cmd(&format!("RCPT TO:<{r}>")))
        .collect();
    c.cmd("QUIT");
    replies
}

/// Every way of naming a destination that is not ours, including
/// sender-specified routing through one of ours.
const NOT_OURS: &[&str] = &[
    "victim@elsewhere.test",
    "victim@ELSEWHERE.test",
    "victim%elsewhere.test@relay.test",
    "elsewhere.test!victim@relay.test",
    "\"victim@elsewhere.test\"@relay.test",
    "\"victim%elsewhere.test\"@relay.test",
    "@relay.test:victim@elsewhere.test",
    "@relay.test,@relay.test:victim@elsewhere.test",
    "victim@[127.0.0.1]",
    "victim@[IPv6:::1]",
    "victim@relay.test.elsewhere.test",
    "victim@notrelay.test",
    "victim@elsewhere",
    "postmaster",
];

#[test]
fn unauthenticated_client_cannot_relay_in_any_address_form() {
    let server = Server::start(RELAY);
    let replies = rcpt_replies(&server, NOT_OURS);
    for (rcpt, reply) in NOT_OURS.iter().zip(&replies) {
        assert!(
            reply.starts_with('4') || reply.starts_with('5'),
            "RCPT TO:<{rcpt}> was accepted from an untrusted client: {reply}"
        );
    }
    // The default smtpd_relay_restrictions end with
    // defer_unauth_destination, as Postfix 2.10's: a temporary 454.
    assert_eq!(
        replies[0],
        "454 4.7.1 <victim@elsewhere.test>: Relay access denied"
    );
    assert_eq!(
        replies[2],
        "454 4.7.1 <victim%elsewhere.test@relay.test>: Relay access denied"
    );
    // user@a@b is not even an address.
    let replies = rcpt_replies(&server, &["victim@elsewhere.test@relay.test"]);
    assert!(replies[0].starts_with("501"), "{replies:?}");
    assert!(server.queue().is_empty());
    server.wait_for_log(
        "NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 454 4.7.1 <victim@elsewhere.test>: \
         Relay access denied; from=<sender@client.test> to=<victim@elsewhere.test> \
         proto=ESMTP helo=<client.test>",
    );
}

#[test]
fn reject_unauth_destination_refuses_permanently() {
    let server = Server::start(&format!(
        "{RELAY}smtpd_relay_restrictions = \"permit_mynetworks, reject_unauth_destination\""
    ));
    let replies = rcpt_replies(&server, &["victim@elsewhere.test", "user@relay.test"]);
    assert_eq!(
        replies,
        [
            "554 5.7.1 <victim@elsewhere.test>: Relay access denied",
            "250 2.1.5 Ok"
        ]
    );
}

#[test]
fn relay_domain_mail_from_anyone_is_accepted() {
    let server = Server::start(RELAY);
    let ours = ["user@relay.test", "User@RELAY.TEST", "user@sub.relay.test"];
    let replies = rcpt_replies(&server, &ours);
    assert!(replies.iter().all(|r| r == "250 2.1.5 Ok"), "{replies:?}");
    let mut c = Client::connect_from(server.addr(), "127.0.0.2");
    let reply = c.send_mail(
        "sender@client.test",
        &["user@relay.test"],
        "Subject: x\r\n\r\nx\r\n",
    );
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    assert_eq!(server.queue().len(), 1);
}

#[test]
fn mynetworks_clients_relay_anywhere() {
    let server = Server::start(RELAY);
    let mut c = server.client();
    let reply = c.send_mail(
        "a@relay.test",
        &["victim@elsewhere.test"],
        "Subject: x\r\n\r\nx\r\n",
    );
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
}

#[test]
fn unlisted_relay_recipients_are_unknown_users() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("relay_recipients");
    std::fs::write(&map, "known@relay.test x\n@sub.relay.test x\n").unwrap();
    let server = Server::start(&format!(
        "{RELAY}relay_recipient_maps = \"{}\"",
        map.display()
    ));
    let replies = rcpt_replies(
        &server,
        &[
            "known@relay.test",
            "anyone@sub.relay.test",
            "unknown@relay.test",
        ],
    );
    assert_eq!(
        replies,
        [
            "250 2.1.5 Ok",
            "250 2.1.5 Ok",
            "550 5.1.1 <unknown@relay.test>: Recipient address rejected: User unknown in relay \
             recipient table"
        ]
    );
}

#[test]
fn access_tables_and_fqdn_checks_answer_like_postfix() {
    let dir = tempfile::tempdir().unwrap();
    let senders = dir.path().join("senders");
    std::fs::write(
        &senders,
        "spammer@client.test REJECT\nbad.test 550 5.7.0 go away\n",
    )
    .unwrap();
    let recipients = dir.path().join("recipients");
    std::fs::write(&recipients, "closed@relay.test DEFER\n").unwrap();
    let server = Server::start(&format!(
        "{RELAY}smtpd_sender_restrictions = \"check_sender_access {}\"\n\
         smtpd_recipient_restrictions = \"reject_non_fqdn_recipient, check_recipient_access {}\"\n\
         smtpd_helo_restrictions = \"reject_non_fqdn_helo_hostname\"",
        senders.display(),
        recipients.display()
    ));
    let mut c = Client::connect_from(server.addr(), "127.0.0.2");
    c.cmd("EHLO client.test");
    assert_eq!(c.cmd("MAIL FROM:<spammer@client.test>"), "250 2.1.0 Ok");
    assert_eq!(
        c.cmd("RCPT TO:<user@relay.test>"),
        "554 5.7.1 <spammer@client.test>: Sender address rejected: Access denied"
    );
    c.cmd("RSET");
    c.cmd("MAIL FROM:<x@bad.test>");
    assert_eq!(
        c.cmd("RCPT TO:<user@relay.test>"),
        "550 5.7.0 <x@bad.test>: Sender address rejected: go away"
    );
    c.cmd("RSET");
    c.cmd("MAIL FROM:<ok@client.test>");
    assert_eq!(
        c.cmd("RCPT TO:<closed@relay.test>"),
        "450 4.7.1 <closed@relay.test>: Recipient address rejected: Access denied"
    );
    assert_eq!(c.cmd("RCPT TO:<open@relay.test>"), "250 2.1.5 Ok");
    c.cmd("RSET");
    c.cmd("HELO localhost");
    c.cmd("MAIL FROM:<ok@client.test>");
    assert_eq!(
        c.cmd("RCPT TO:<open@relay.test>"),
        "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname"
    );
}

/// nmap's own open-relay probe (16 address forms), from a client outside
/// `mynetworks`.
#[test]
fn nmap_smtp_open_relay_finds_no_open_relay() {
    if !have_tool("nmap") {
        return;
    }
    // 127.0.0.1 is nmap's source address: keep it outside mynetworks.
    // The server's own name is a relay domain, so that the script's
    // `relaytest%elsewhere.test@mx.towerpost.test` forms test routing
    // through a domain we do accept mail for.
    let server = Server::start(
        "mynetworks = \"192.0.2.0/24\"\nrelay_domains = [\"mx.towerpost.test\"]\n\
         smtpd_client_connection_count_limit = 0",
    );
    let port = server.addr().port().to_string();
    let out = Command::new("nmap")
        // -sV: the script only runs on a port nmap knows as SMTP.
        .args(["-Pn", "-n", "-sT", "-sV", "--version-light", "-p", &port])
        .args(["--script", "smtp-open-relay"])
        .args([
            "--script-args",
            // domain: where the probes try to relay to.
            "smtp-open-relay.domain=elsewhere.test,smtp-open-relay.ip=127.0.0.1",
            "--host-timeout",
            "120s",
            "127.0.0.1",
        ])
        .output()
        .expect("run nmap");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("smtp-open-relay"),
        "the script did not run:\n{stdout}"
    );
    assert!(!stdout.contains("is an open relay"), "{stdout}");
    assert!(
        stdout.contains("doesn't seem to be an open relay"),
        "unexpected nmap output:\n{stdout}"
    );
    assert!(server.queue().is_empty(), "{:?}", server.queue());
}
