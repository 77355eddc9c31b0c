//! The restrictions layer with a scripted DNS and a core that accepts
//! everything: what each restriction answers, without a network.

use std::sync::Arc;

use tower::{Service, ServiceExt, service_fn};
use towerpost::restrictions::{DomainStatus, SmtpdRestrictions};
use towerpost::{BoxError, Config, RequestKind, SessionInfo, SmtpRequest, Transaction};
use towerpost_protocol::{Address, Command, EnhancedCode, MailParams, RcptParams, Reply};

/// DNS as the tests script it: `*.nx` does not exist, `*.tmp` times out,
/// `null.test` has a null MX, everything else exists.
fn dns(domain: &str) -> DomainStatus {
    if domain.ends_with(".nx") {
        DomainStatus::NotFound
    } else if domain.ends_with(".tmp") {
        DomainStatus::TempFail("timeout".into())
    } else if domain == "null.test" {
        DomainStatus::NullMx
    } else {
        DomainStatus::Exists
    }
}

async fn rcpt(env: &[(&str, &str)], client: &str, sender: &str, to: &str) -> Reply {
    let config = Arc::new(Config::load_with_env(None, env).expect("config"));
    let policy = config.smtpd_policy(&config.listener[0]);
    let layer = SmtpdRestrictions::new(config, policy, Arc::new(dns)).layer();
    let core = service_fn(|_req: SmtpRequest| async {
        Ok::<_, BoxError>(Reply::enhanced(250, EnhancedCode::new(2, 1, 5), "Ok"))
    });
    let mut service = tower::Layer::layer(&layer, core);
    let session = SessionInfo::new(
        format!("{client}:40000").parse().unwrap(),
        "127.0.0.1:25".parse().unwrap(),
        "smtp",
    );
    let request = SmtpRequest {
        session: Arc::new(session),
        transaction: Some(Arc::new(Transaction {
            sender: (!sender.is_empty()).then(|| Address::parse(sender).unwrap()),
            params: MailParams::default(),
            recipients: Vec::new(),
        })),
        kind: RequestKind::Command(Command::Rcpt {
            to: Address::parse(to).unwrap(),
            params: RcptParams::default(),
        }),
    };
    service.ready().await.unwrap().call(request).await.unwrap()
}

const SENDER_DNS: (&str, &str) = (
    "TOWERPOST_SMTPD_SENDER_RESTRICTIONS",
    "reject_unknown_sender_domain",
);

#[tokio::test]
async fn unknown_sender_domains_get_postfixs_450_550_split() {
    let trusted = "127.0.0.1";
    let ok = rcpt(&[SENDER_DNS], trusted, "a@exists.test", "b@x.test").await;
    assert_eq!(ok.to_string(), "250 2.1.5 Ok");
    let nx = rcpt(&[SENDER_DNS], trusted, "a@gone.nx", "b@x.test").await;
    assert_eq!(
        nx.to_string(),
        "450 4.1.8 <a@gone.nx>: Sender address rejected: Domain not found"
    );
    let strict = [SENDER_DNS, ("TOWERPOST_UNKNOWN_ADDRESS_REJECT_CODE", "550")];
    let nx = rcpt(&strict, trusted, "a@gone.nx", "b@x.test").await;
    assert_eq!(
        nx.to_string(),
        "550 5.1.8 <a@gone.nx>: Sender address rejected: Domain not found"
    );
    // A DNS failure is always temporary, whatever the reject code.
    let tmp = rcpt(&strict, trusted, "a@slow.tmp", "b@x.test").await;
    assert_eq!(
        tmp.to_string(),
        "450 4.1.8 <a@slow.tmp>: Sender address rejected: Domain not found"
    );
    let null = rcpt(&strict, trusted, "a@null.test", "b@x.test").await;
    assert_eq!(
        null.to_string(),
        "550 5.7.27 <a@null.test>: Sender address rejected: Domain null.test does not accept \
         mail (nullMX)"
    );
    // The null sender has no domain to check.
    let bounce = rcpt(&strict, trusted, "", "b@x.test").await;
    assert_eq!(bounce.to_string(), "250 2.1.5 Ok");
}

#[tokio::test]
async fn unknown_recipient_domains_are_checked_but_relay_domains_are_ours() {
    let env = [
        (
            "TOWERPOST_SMTPD_RECIPIENT_RESTRICTIONS",
            "reject_unknown_recipient_domain",
        ),
        ("TOWERPOST_RELAY_DOMAINS", "ours.nx"),
    ];
    let nx = rcpt(&env, "127.0.0.1", "a@x.test", "b@gone.nx").await;
    assert_eq!(
        nx.to_string(),
        "450 4.1.2 <b@gone.nx>: Recipient address rejected: Domain not found"
    );
    let null = rcpt(&env, "127.0.0.1", "a@x.test", "b@null.test").await;
    assert_eq!(null.code(), 556, "{null}");
    let ours = rcpt(&env, "127.0.0.1", "a@x.test", "b@ours.nx").await;
    assert_eq!(ours.code(), 250, "{ours}");
}

#[tokio::test]
async fn permit_in_one_list_does_not_skip_the_next() {
    // Postfix: OK ends only its own list; the relay decision still runs.
    let env = [("TOWERPOST_SMTPD_CLIENT_RESTRICTIONS", "permit")];
    let relay = rcpt(&env, "192.0.2.1", "a@x.test", "b@elsewhere.test").await;
    assert_eq!(
        relay.to_string(),
        "454 4.7.1 <b@elsewhere.test>: Relay access denied"
    );
}

#[tokio::test]
async fn sender_login_mismatch_needs_the_owner_logged_in() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("logins");
    std::fs::write(&map, "alice@x.test alice\n").unwrap();
    let env = [
        ("TOWERPOST_SMTPD_SENDER_LOGIN_MAPS", map.to_str().unwrap()),
        (
            "TOWERPOST_SMTPD_SENDER_RESTRICTIONS",
            "reject_sender_login_mismatch",
        ),
    ];
    let reply = rcpt(&env, "127.0.0.1", "alice@x.test", "b@y.test").await;
    assert_eq!(
        reply.to_string(),
        "553 5.7.1 <alice@x.test>: Sender address rejected: not logged in"
    );
    let unowned = rcpt(&env, "127.0.0.1", "carol@x.test", "b@y.test").await;
    assert_eq!(unowned.code(), 250, "{unowned}");
}
