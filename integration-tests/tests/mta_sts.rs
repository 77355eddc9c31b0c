//! Outbound TLS policy: MTA-STS (RFC 8461), `smtp_tls_policy_maps` and
//! `smtp_tls_CAfile`.
//!
//! The SMTP client runs in-process (`towerpost::delivery::transports_in`)
//! so that it can ask a local DNS server (hickory's own server crate, on
//! loopback) and reach the policy host on a port other than 443; the next
//! hops are real towerpost binaries offering STARTTLS with certificates
//! from a test CA. Nothing here touches real DNS.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_server::proto::rr::rdata::{A, MX, SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use integration_tests::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;
use towerpost::delivery::Outside;
use towerpost_config::Nexthop;
use towerpost_protocol::Address;
use towerpost_queue::{DeliveryRecipient, DeliveryRequest, Outcome, QueueId, Transport};

/// A test CA and certificates it signs.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "towerpost test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate for `names` and its key, PEM.
    fn leaf(&self, names: &[&str]) -> (String, String) {
        let params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A towerpost next hop offering STARTTLS with a certificate for `names`.
fn next_hop(dir: &Path, ca: &Ca, names: &[&str]) -> Server {
    let (cert, key) = ca.leaf(names);
    let tag = names[0];
    let cert_path = dir.join(format!("{tag}.crt"));
    let key_path = dir.join(format!("{tag}.key"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    Server::start_with(
        &format!(
            "smtpd_tls_cert_file = \"{}\"\nsmtpd_tls_key_file = \"{}\"\n\
             relay_domains = \"good.test, bad.test, testing.test, elsewhere.test\"",
            cert_path.display(),
            key_path.display()
        ),
        &[("smtp", "starttls")],
    )
}

/// The zone `test.`: every domain has an MX host, an `_mta-sts` record
/// and a policy host, all on 127.0.0.1.
fn zone() -> InMemoryZoneHandler {
    let name = |s: &str| Name::from_ascii(s).unwrap();
    let origin = name("test.");
    let mut zone = InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let soa = SOA::new(name("ns.test."), name("hostmaster.test."), 1, 60, 60, 60, 1);
    zone.upsert_mut(Record::from_rdata(origin, 60, RData::SOA(soa)), 1);
    let local = || RData::A(A::new(127, 0, 0, 1));
    for domain in ["good", "bad", "testing", "elsewhere"] {
        let d = |prefix: &str| name(&format!("{prefix}{domain}.test."));
        let mx = MX::new(10, d("mx."));
        zone.upsert_mut(Record::from_rdata(d(""), 60, RData::MX(mx)), 1);
        zone.upsert_mut(Record::from_rdata(d("mx."), 60, local()), 1);
        zone.upsert_mut(Record::from_rdata(d("mta-sts."), 60, local()), 1);
        let txt = TXT::new(vec!["v=STSv1; id=20261202;".to_owned()]);
        zone.upsert_mut(Record::from_rdata(d("_mta-sts."), 60, RData::TXT(txt)), 1);
    }
    zone
}

/// The policies the policy host serves, by domain.
fn policies() -> HashMap<String, String> {
    let policy = |mode: &str, mx: &str| {
        format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n")
    };
    HashMap::from([
        ("good.test".to_owned(), policy("enforce", "mx.good.test")),
        ("bad.test".to_owned(), policy("enforce", "*.bad.test")),
        (
            "testing.test".to_owned(),
            policy("testing", "mx.testing.test"),
        ),
        (
            "elsewhere.test".to_owned(),
            policy("enforce", "mx.other.test"),
        ),
    ])
}

/// The local world: DNS server, policy host, logs.
struct World {
    dir: tempfile::TempDir,
    ca: Ca,
    dns: SocketAddr,
    https: SocketAddr,
    fetches: Arc<AtomicUsize>,
    https_task: Option<tokio::task::JoinHandle<()>>,
    zone: Arc<InMemoryZoneHandler>,
    _dns_server: hickory_server::Server<Catalog>,
    rt: tokio::runtime::Runtime,
    log: Arc<Mutex<Vec<u8>>>,
}

impl World {
    fn new() -> World {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new();
        std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
        let zone = Arc::new(zone());
        let (dns_server, dns) = rt.block_on(async {
            let mut catalog = Catalog::new();
            catalog.upsert(
                LowerName::from(Name::from_ascii("test.").unwrap()),
                vec![zone.clone()],
            );
            let mut server = hickory_server::Server::new(catalog);
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(5), 4096);
            (server, addr)
        });
        let fetches = Arc::new(AtomicUsize::new(0));
        let (https_task, https) = rt.block_on(policy_host(&ca, fetches.clone()));
        World {
            dir,
            ca,
            dns,
            https,
            fetches,
            https_task: Some(https_task),
            zone,
            _dns_server: dns_server,
            rt,
            log: Arc::default(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The client's transports under `extra` configuration.
    fn transports(&self, extra: &str) -> HashMap<String, Transport> {
        let spool = self.path("spool");
        std::fs::create_dir_all(&spool).unwrap();
        let config = self.path("client.toml");
        std::fs::write(
            &config,
            format!(
                "myhostname = \"client.test\"\nqueue_directory = \"{}\"\n\
                 smtp_tls_CAfile = \"{}\"\nsmtp_connection_cache_time_limit = \"1s\"\n{extra}\n",
                spool.display(),
                self.path("ca.pem").display()
            ),
        )
        .unwrap();
        let config = towerpost_config::Config::load_with_env(Some(&config), &[]).unwrap();
        let outside = Outside {
            name_servers: vec![self.dns],
            https_port: Some(self.https.port()),
        };
        self.rt
            .block_on(async { towerpost::delivery::transports_in(&config, &outside) })
            .unwrap()
    }

    /// Delivers one message through `transports` to `nexthop`; returns the
    /// outcome and the log lines written meanwhile.
    fn deliver(
        &self,
        transports: &HashMap<String, Transport>,
        nexthop: &Nexthop,
    ) -> (Outcome, String) {
        let request = DeliveryRequest {
            queue_id: QueueId::from_u64(1),
            transport: "smtp".into(),
            nexthop: nexthop.clone(),
            sender: Some(Address::parse("a@client.test").unwrap()),
            recipients: vec![DeliveryRecipient {
                address: Address::parse(&format!("b@{}", nexthop.host)).unwrap(),
                notify: None,
                orcpt: None,
            }],
            content: towerpost_queue::Content::from_bytes(
                b"Subject: sts\r\n\r\nhello\r\n".to_vec(),
            ),
            eight_bit_mime: false,
            smtputf8: false,
            ret: None,
            envid: None,
        };
        let service = transports["smtp"].service.clone();
        let log = self.log.clone();
        let writer = move || LogWriter(log.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        self.log.lock().unwrap().clear();
        let report = tracing::subscriber::with_default(subscriber, || {
            self.rt.block_on(service.oneshot(request)).unwrap()
        });
        let log = String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned();
        (report.outcomes[0].clone(), log)
    }

    /// Replaces `domain`'s `_mta-sts` TXT record.
    fn set_record(&self, domain: &str, text: &str) {
        let name = Name::from_ascii(format!("_mta-sts.{domain}.")).unwrap();
        self.rt.block_on(async {
            self.zone
                .records_mut()
                .await
                .remove(&RrKey::new(LowerName::from(&name), RecordType::TXT));
            let txt = TXT::new(vec![text.to_owned()]);
            assert!(
                self.zone
                    .upsert(Record::from_rdata(name, 60, RData::TXT(txt)), 2)
                    .await
            );
        });
    }

    /// Waits (running the client's tasks) until the cache file names
    /// `domain`; the file is written at most once a second.
    fn wait_for_cache(&self, domain: &str) -> String {
        for _ in 0..100 {
            let cache =
                std::fs::read_to_string(self.path("spool/mta-sts.json")).unwrap_or_default();
            if cache.contains(&format!("\"{domain}\"")) {
                return cache;
            }
            self.rt
                .block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
        }
        panic!("the MTA-STS cache never listed {domain}");
    }

    fn stop_policy_host(&mut self) {
        if let Some(task) = self.https_task.take() {
            task.abort();
            let _ = self.rt.block_on(task);
        }
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An HTTPS server for `mta-sts.*.test` answering each Host with its
/// policy; counts the fetches.
async fn policy_host(
    ca: &Ca,
    fetches: Arc<AtomicUsize>,
) -> (tokio::task::JoinHandle<()>, SocketAddr) {
    use rustls::pki_types::pem::PemObject;
    let names: Vec<String> = policies().keys().map(|d| format!("mta-sts.{d}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (cert, key) = ca.leaf(&names);
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let policies = policies();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let host = head
                .lines()
                .find_map(|l| l.strip_prefix("host:"))
                .map(|h| h.trim().trim_start_matches("mta-sts.").to_owned())
                .unwrap_or_default();
            let ok = head.starts_with("get /.well-known/mta-sts.txt http/1.1");
            let response = match policies.get(&host) {
                Some(body) if ok => {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
                _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned(),
            };
            let _ = tls.write_all(response.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });
    (task, addr)
}

fn hop(domain: &str, server: &Server) -> Nexthop {
    Nexthop {
        port: Some(server.addr().port()),
        ..Nexthop::domain(domain)
    }
}

fn assert_sent(outcome: &Outcome, log: &str) {
    assert!(
        matches!(outcome, Outcome::Sent { .. }),
        "{outcome:?}\n{log}"
    );
}

fn deferred_reason(outcome: &Outcome, log: &str) -> String {
    match outcome {
        Outcome::Deferred { reason, .. } => reason.clone(),
        other => panic!("expected a deferral, got {other:?}\n{log}"),
    }
}

#[test]
fn enforce_mode_refuses_a_next_hop_whose_certificate_does_not_match() {
    let world = World::new();
    let good = next_hop(world.dir.path(), &world.ca, &["mx.good.test"]);
    let wrong = next_hop(world.dir.path(), &world.ca, &["wrong.test"]);
    let transports = world.transports("");

    // A matching MX with a certificate for its name: delivered over TLS.
    let (outcome, log) = world.deliver(&transports, &hop("good.test", &good));
    assert_sent(&outcome, &log);
    assert!(
        log.contains("MTA-STS policy for good.test: mode=enforce, id=20261202"),
        "{log}"
    );
    good.wait_for_log("TLS connection established from");
    assert_eq!(good.queue().len(), 1);

    // A certificate from a trusted CA, but not for the MX host's name.
    let (outcome, log) = world.deliver(&transports, &hop("bad.test", &wrong));
    let reason = deferred_reason(&outcome, &log);
    assert!(
        reason.starts_with("MTA-STS policy of bad.test: TLS handshake with mx.bad.test[127.0.0.1] failed: invalid peer certificate"),
        "{reason}"
    );
    assert!(wrong.queue().is_empty(), "delivered despite the policy");

    // An MX host the policy does not name is not used at all.
    let connections_before = good.log().matches("connect from").count();
    let (outcome, log) = world.deliver(&transports, &hop("elsewhere.test", &good));
    let reason = deferred_reason(&outcome, &log);
    assert_eq!(
        reason,
        "MTA-STS policy of elsewhere.test names none of its MX hosts"
    );
    assert!(
        log.contains("does not name MX host mx.elsewhere.test; not used"),
        "{log}"
    );
    assert_eq!(
        good.log().matches("connect from").count(),
        connections_before
    );
    assert_eq!(
        world.fetches.load(Ordering::SeqCst),
        3,
        "one fetch per domain"
    );
}

#[test]
fn enforce_mode_never_falls_back_to_plain_text() {
    let world = World::new();
    let plain = Server::start("relay_domains = \"good.test\"");
    let transports = world.transports("");
    let (outcome, log) = world.deliver(&transports, &hop("good.test", &plain));
    let reason = deferred_reason(&outcome, &log);
    assert_eq!(
        reason,
        "MTA-STS policy of good.test: TLS is required, but was not offered by host \
         mx.good.test[127.0.0.1]"
    );
    assert!(plain.queue().is_empty());
}

#[test]
fn testing_mode_delivers_and_logs_what_enforcing_would_refuse() {
    let world = World::new();
    let wrong = next_hop(world.dir.path(), &world.ca, &["wrong.test"]);
    let transports = world.transports("");
    let (outcome, log) = world.deliver(&transports, &hop("testing.test", &wrong));
    assert_sent(&outcome, &log);
    assert!(
        log.contains(
            "MTA-STS policy of testing.test (testing): enforce would defer: certificate of \
             mx.testing.test[127.0.0.1] not verified: invalid peer certificate"
        ),
        "{log}"
    );
    wrong.wait_for_log("TLS connection established from");
    assert_eq!(wrong.queue().len(), 1);
}

#[test]
fn the_policy_cache_survives_a_restart() {
    let mut world = World::new();
    let wrong = next_hop(world.dir.path(), &world.ca, &["wrong.test"]);
    let transports = world.transports("");
    let (outcome, log) = world.deliver(&transports, &hop("bad.test", &wrong));
    deferred_reason(&outcome, &log);
    world.wait_for_cache("bad.test");
    drop(transports);

    // "Restart" with the policy host gone: the cached policy still applies.
    world.stop_policy_host();
    let transports = world.transports("");
    let (outcome, log) = world.deliver(&transports, &hop("bad.test", &wrong));
    let reason = deferred_reason(&outcome, &log);
    assert!(
        reason.starts_with("MTA-STS policy of bad.test: TLS handshake"),
        "{reason}"
    );
    assert_eq!(
        world.fetches.load(Ordering::SeqCst),
        1,
        "served from the cache"
    );
    drop(transports);

    // A new id whose policy cannot be fetched, or a record that is gone:
    // the cached policy stays in force (RFC 8461 §5.1), so an attacker who
    // blocks DNS or the policy host cannot downgrade delivery.
    world.set_record("bad.test", "v=STSv1; id=20261203;");
    let transports = world.transports("");
    let (outcome, log) = world.deliver(&transports, &hop("bad.test", &wrong));
    let reason = deferred_reason(&outcome, &log);
    assert!(
        reason.starts_with("MTA-STS policy of bad.test: TLS handshake"),
        "{reason}"
    );
    assert!(
        log.contains("MTA-STS policy fetch for bad.test failed")
            && log.contains("using the cached policy"),
        "{log}"
    );
    world.set_record("bad.test", "v=spf1 -all");
    let (outcome, log) = world.deliver(&transports, &hop("bad.test", &wrong));
    deferred_reason(&outcome, &log);
    assert!(wrong.queue().is_empty());
    drop(transports);

    // Without the cache, an unreachable policy host means no policy
    // (RFC 8461 §5.1), so the same delivery goes through: the cache was
    // what kept the policy.
    std::fs::remove_file(world.path("spool/mta-sts.json")).unwrap();
    world.set_record("bad.test", "v=STSv1; id=20261204;");
    let transports = world.transports("");
    let (outcome, log) = world.deliver(&transports, &hop("bad.test", &wrong));
    assert_sent(&outcome, &log);
    assert!(
        log.contains("MTA-STS policy fetch for bad.test failed"),
        "{log}"
    );
}

#[test]
fn a_policy_map_entry_wins_over_mta_sts() {
    let world = World::new();
    let wrong = next_hop(world.dir.path(), &world.ca, &["wrong.test"]);
    // The key is the next hop as routed: here with the test's port.
    let transports = world.transports(&format!(
        "[smtp_tls_policy_maps]\n\"{}\" = \"may\"",
        hop("bad.test", &wrong)
    ));
    let (outcome, log) = world.deliver(&transports, &hop("bad.test", &wrong));
    assert_sent(&outcome, &log);
    assert_eq!(world.fetches.load(Ordering::SeqCst), 0, "no MTA-STS lookup");

    // And MTA-STS can be switched off.
    let transports = world.transports("smtp_mta_sts_enable = false");
    let (outcome, log) = world.deliver(&transports, &hop("bad.test", &wrong));
    assert_sent(&outcome, &log);
    assert_eq!(world.fetches.load(Ordering::SeqCst), 0);
    assert_eq!(wrong.queue().len(), 2);
}

/// The real binary: `smtp_tls_policy_maps` with `match=` names for a
/// bracketed next hop, verified against `smtp_tls_CAfile`.
#[test]
fn policy_maps_pin_a_private_next_hop_to_its_certificate_names() {
    let world = World::new();
    let hop = next_hop(world.dir.path(), &world.ca, &["relay.internal.test"]);
    let port = hop.addr().port();
    let relay = |matches: &str| {
        Server::start(&format!(
            "relayhost = \"[127.0.0.1]:{port}\"\nsmtp_tls_CAfile = \"{}\"\n\
             queue_run_delay = \"1s\"\nminimal_backoff_time = \"1s\"\n\
             [smtp_tls_policy_maps]\n\"[127.0.0.1]:{port}\" = \"secure match={matches}\"",
            world.path("ca.pem").display()
        ))
    };
    let client = relay("relay.internal.test");
    let reply =
        client
            .client()
            .send_mail("a@client.test", &["b@good.test"], "Subject: x\r\n\r\nx\r\n");
    let id = integration_tests::queued_id(&reply);
    client.wait_for_log(&format!(
        "{id}: to=<b@good.test>, relay=127.0.0.1[127.0.0.1]:{port}"
    ));
    client.wait_for_log("status=sent");

    let client = relay("other.internal.test:nexthop");
    let reply =
        client
            .client()
            .send_mail("a@client.test", &["b@good.test"], "Subject: x\r\n\r\nx\r\n");
    let id = integration_tests::queued_id(&reply);
    client.wait_for_log(&format!("{id}: to=<b@good.test>, relay=none, delay="));
    client.wait_for_log(
        "dsn=4.7.5, status=deferred (smtp_tls_policy_maps: TLS handshake with 127.0.0.1[127.0.0.1] failed: invalid peer certificate",
    );
    assert_eq!(hop.queue().len(), 1);
}

#[test]
fn an_unreadable_ca_file_stops_the_server_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("t.toml");
    std::fs::write(
        &config,
        format!(
            "queue_directory = \"{}\"\nsmtp_tls_CAfile = \"{}\"\n",
            dir.path().join("spool").display(),
            dir.path().join("missing.pem").display()
        ),
    )
    .unwrap();
    let config = towerpost_config::Config::load_with_env(Some(&config), &[]).unwrap();
    let Err(error) = towerpost::delivery::transports(&config) else {
        panic!("a missing CA file was accepted");
    };
    assert!(
        error.starts_with(&format!(
            "smtp_tls_CAfile: {}: ",
            dir.path().join("missing.pem").display()
        )),
        "{error}"
    );
}
