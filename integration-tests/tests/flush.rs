//! Fast flush end to end: the ETRN_README scenario. A customer's domain is
//! routed through an `etrn-only` transport listed in `defer_transports`;
//! its mail waits until ETRN, `postqueue -s`, `sendmail -qR`,
//! `postqueue -i` or `postqueue -f` releases exactly what it should.

use std::time::Duration;

use integration_tests::sink::Sink;
use integration_tests::{Server, queued_id};

struct Site {
    server: Server,
    customer: Sink,
    other: Sink,
}

/// customer.test and other.test both park their mail on etrn-only
/// transports; only customer.test is in fast_flush_domains.
fn parked_sites() -> Site {
    let customer = Sink::start();
    let other = Sink::start();
    let server = Server::start(&format!(
        "queue_run_delay = \"1s\"\nminimal_backoff_time = \"1s\"\nmaximal_backoff_time = \"2s\"\n\
         relay_domains = [\"customer.test\", \"other.test\"]\n\
         fast_flush_domains = [\"customer.test\"]\n\
         defer_transports = [\"etrn-only\"]\n\
         [transport.etrn-only]\ntype = \"smtp\"\n\
         [transport_maps]\n\
         \"customer.test\" = \"etrn-only:[127.0.0.1]:{}\"\n\
         \"other.test\" = \"etrn-only:[127.0.0.1]:{}\"\n",
        customer.addr().port(),
        other.addr().port()
    ));
    Site {
        server,
        customer,
        other,
    }
}

fn send(server: &Server, to: &[&str]) -> String {
    let mut c = server.client();
    let reply = c.send_mail("a@example.test", to, "Subject: parked\r\n\r\nx\r\n");
    let id = queued_id(&reply);
    c.cmd("QUIT");
    id
}

fn wait_parked(server: &Server, id: &str) {
    server.wait_for_log(&format!("{id}: to=<"));
    server.wait_for_log("status=deferred (deferred transport)");
}

#[test]
fn etrn_delivers_exactly_the_named_sites_parked_mail() {
    let s = parked_sites();
    let mine = send(&s.server, &["r1@customer.test"]);
    let theirs = send(&s.server, &["r2@other.test"]);
    // One message for both sites: ETRN for one must not release the other.
    let mixed = send(&s.server, &["r3@customer.test", "r4@other.test"]);
    for id in [&mine, &theirs, &mixed] {
        wait_parked(&s.server, id);
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(s.customer.messages().is_empty() && s.other.messages().is_empty());

    let mut c = s.server.client();
    assert!(c.cmd("EHLO customer.test").contains("ETRN"));
    assert_eq!(c.cmd("ETRN customer.test"), "250 Queuing started");
    let got = s.customer.wait_for(2, Duration::from_secs(20));
    let mut rcpts: Vec<String> = got.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["r1@customer.test", "r3@customer.test"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        s.other.messages().is_empty(),
        "another site's parked mail was released"
    );
    let queue = s.server.queue();
    let ids: Vec<&str> = queue
        .iter()
        .map(|m| m["queue_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&theirs.as_str()) && ids.contains(&mixed.as_str()));
    assert!(!ids.contains(&mine.as_str()));
}

#[test]
fn etrn_replies_match_postfix() {
    let s = parked_sites();
    let mut c = s.server.client();
    assert_eq!(
        c.cmd("ETRN other.test"),
        "459 <other.test>: service unavailable"
    );
    assert_eq!(
        c.cmd("ETRN nowhere.test"),
        "459 <nowhere.test>: service unavailable"
    );
    assert_eq!(
        c.cmd("ETRN bad_domain!"),
        "501 Error: invalid parameter syntax"
    );
    assert_eq!(c.cmd("ETRN"), "500 Syntax: ETRN domain");
    assert_eq!(c.cmd("ETRN a.test b.test"), "500 Syntax: ETRN domain");
    assert_eq!(c.cmd("ETRN to:customer.test"), "500 Syntax: ETRN domain");
    // Postfix's valid_hostname(): no trailing dot, no all-numeric name,
    // underscores allowed; the 459 echoes the name as given.
    for bad in [
        "customer.test.",
        "123",
        "1.2.3.4",
        "[::1]",
        "<customer.test>",
        "\"a b\"",
    ] {
        assert_eq!(
            c.cmd(&format!("ETRN {bad}")),
            "501 Error: invalid parameter syntax",
            "ETRN {bad}"
        );
    }
    assert_eq!(
        c.cmd("ETRN @Other.TEST"),
        "459 <Other.TEST>: service unavailable"
    );
    assert_eq!(
        c.cmd("ETRN _x.nowhere.test"),
        "459 <_x.nowhere.test>: service unavailable"
    );
    // A leading @ or # is stripped; nothing is queued, still 250.
    assert_eq!(c.cmd("ETRN @customer.test"), "250 Queuing started");
    assert_eq!(c.cmd("ETRN #Customer.TEST"), "250 Queuing started");
    assert!(c.cmd("EHLO x.test").starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(
        c.cmd("ETRN customer.test"),
        "503 Error: MAIL transaction in progress"
    );
    // The transaction check comes before the argument count.
    assert_eq!(c.cmd("ETRN a b"), "503 Error: MAIL transaction in progress");
}

#[test]
fn postqueue_and_sendmail_flush_forms() {
    let s = parked_sites();
    let a = send(&s.server, &["r1@customer.test"]);
    let b = send(&s.server, &["r2@other.test"]);
    wait_parked(&s.server, &a);
    wait_parked(&s.server, &b);

    // postqueue -s: exactly the site.
    let (status, out, err) = s.server.cli(&["postqueue", "-s", "customer.test"]);
    assert!(status.success(), "{out}{err}");
    assert_eq!(s.customer.wait_for(1, Duration::from_secs(20)).len(), 1);

    // Ineligible and invalid sites: Postfix's words and exit 69.
    let (status, _, err) = s.server.cli(&["postqueue", "-s", "other.test"]);
    assert_eq!(status.code(), Some(69));
    assert_eq!(
        err,
        "postqueue: fatal: Flush service is not configured for destination \"other.test\"\n"
    );
    let (status, _, err) = s.server.cli(&["postqueue", "-s", "bad_domain!"]);
    assert_eq!(status.code(), Some(69));
    assert_eq!(
        err,
        "postqueue: fatal: Cannot flush mail queue - invalid destination: \"bad_domain!\"\n"
    );

    // postqueue -i releases one message whatever its site.
    let (status, _, err) = s.server.cli(&["postqueue", "-i", &b]);
    assert!(status.success(), "{err}");
    assert_eq!(s.other.wait_for(1, Duration::from_secs(20)).len(), 1);

    // sendmail -qR and -q.
    let c = send(&s.server, &["r5@customer.test"]);
    let d = send(&s.server, &["r6@other.test"]);
    wait_parked(&s.server, &c);
    wait_parked(&s.server, &d);
    let (status, _, err) = s.server.cli(&["sendmail", "-qRcustomer.test"]);
    assert!(status.success(), "{err}");
    assert_eq!(s.customer.wait_for(2, Duration::from_secs(20)).len(), 2);
    assert_eq!(s.other.messages().len(), 1);
    let (status, _, err) = s.server.cli(&["sendmail", "-q"]);
    assert!(status.success(), "{err}");
    assert_eq!(s.other.wait_for(2, Duration::from_secs(20)).len(), 2);
    s.server.wait_for_log(&format!("{d}: removed"));
    assert!(s.server.queue().is_empty());
}

#[test]
fn native_flush_command_and_mailq() {
    let s = parked_sites();
    let a = send(&s.server, &["r1@customer.test"]);
    wait_parked(&s.server, &a);
    let (status, out, _) = s.server.cli(&["mailq"]);
    assert!(status.success());
    assert!(
        out.contains(&a) && out.contains("(deferred transport)"),
        "{out}"
    );
    let (status, out, err) = s.server.cli(&["flush", "--site", "customer.test"]);
    assert!(status.success(), "{err}");
    assert_eq!(out, "towerpost: flushing 1 message\n");
    assert_eq!(s.customer.wait_for(1, Duration::from_secs(20)).len(), 1);
}

/// Runs `towerpost --config … ARGS` as the unprivileged user `nobody`.
fn as_nobody(server: &Server, args: &[&str]) -> Option<(Option<i32>, String)> {
    use std::os::unix::fs::PermissionsExt;
    let root_ok = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !root_ok {
        if std::env::var("REQUIRE_TEST_TOOLS").as_deref() == Ok("1") {
            panic!("runuser -u nobody is needed (REQUIRE_TEST_TOOLS=1): run as root");
        }
        eprintln!("SKIPPED: cannot run commands as nobody here (needs root)");
        return None;
    }
    // Let nobody reach the config file and the control socket.
    let dir = server.config_path().parent().unwrap().to_owned();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(server.config_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(integration_tests::towerpost_bin())
        .arg("--config")
        .arg(server.config_path())
        .args(args)
        .output()
        .unwrap();
    Some((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn authorized_flush_users_refuses_unlisted_local_users() {
    let customer = Sink::start();
    let server = Server::start(&format!(
        "authorized_flush_users = [\"!nobody\", \"static:anyone\"]\nqueue_run_delay = \"1s\"\n\
         fast_flush_domains = [\"customer.test\"]\ndefer_transports = [\"etrn-only\"]\n\
         [transport.etrn-only]\ntype = \"smtp\"\n\
         [transport_maps]\n\"customer.test\" = \"etrn-only:[127.0.0.1]:{}\"\n",
        customer.addr().port()
    ));
    let id = send(&server, &["r1@customer.test"]);
    wait_parked(&server, &id);
    let Some((code, err)) = as_nobody(&server, &["postqueue", "-s", "customer.test"]) else {
        return;
    };
    assert_eq!(code, Some(69));
    assert_eq!(
        err,
        "postqueue: fatal: User nobody(65534) is not allowed to flush the mail queue\n"
    );
    for args in [
        &["postqueue", "-f"][..],
        &["postqueue", "-i", id.as_str()],
        &["sendmail", "-q"],
    ] {
        let (code, err) = as_nobody(&server, args).unwrap();
        assert_eq!(code, Some(69), "{args:?}");
        assert!(
            err.contains("is not allowed to flush the mail queue"),
            "{err}"
        );
    }
    // Listing stays open to every user, as Postfix's mailq.
    let (code, _) = as_nobody(&server, &["postqueue", "-p"]).unwrap();
    assert_eq!(code, Some(0));
    std::thread::sleep(Duration::from_secs(1));
    assert!(customer.messages().is_empty());
    // ETRN is not subject to authorized_flush_users.
    let mut c = server.client();
    assert_eq!(c.cmd("ETRN customer.test"), "250 Queuing started");
    assert_eq!(customer.wait_for(1, Duration::from_secs(20)).len(), 1);
}

fn etrn_with(restrictions: &str, extra: &str) -> Server {
    Server::start(&format!(
        "fast_flush_domains = [\"customer.test\", \"other.test\"]\nsmtpd_etrn_restrictions = {restrictions}\n{extra}"
    ))
}

#[test]
fn smtpd_etrn_restrictions_answer_like_postfix() {
    let server = etrn_with("[\"reject\"]", "");
    let mut c = server.client();
    assert_eq!(
        c.cmd("ETRN customer.test"),
        "554 5.7.1 <customer.test>: Etrn command rejected: Access denied"
    );
    let server = etrn_with("[\"defer\"]", "");
    let mut c = server.client();
    assert_eq!(
        c.cmd("ETRN customer.test"),
        "450 4.3.2 <customer.test>: Etrn command rejected: Try again later"
    );
    // Loopback is in the default mynetworks.
    let server = etrn_with("\"permit_mynetworks, reject\"", "");
    let mut c = server.client();
    assert_eq!(c.cmd("ETRN customer.test"), "250 Queuing started");
    let server = etrn_with(
        "[\"permit_mynetworks\", \"reject\"]",
        "mynetworks = [\"192.0.2.0/24\"]",
    );
    let mut c = server.client();
    assert!(c.cmd("ETRN customer.test").starts_with("554 5.7.1"));
    // Syntax is checked before any restriction, as Postfix does.
    assert_eq!(c.cmd("ETRN bad!"), "501 Error: invalid parameter syntax");
    // Other commands are untouched.
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
}

#[test]
fn check_etrn_access_and_helo_checks() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("etrn_access");
    std::fs::write(
        &table,
        "# who may flush\ncustomer.test REJECT no flush for you\nother.test OK\n",
    )
    .unwrap();
    let server = etrn_with(
        &format!(
            "[\"check_etrn_access {}\", \"reject_invalid_helo_hostname\", \"permit\"]",
            table.display()
        ),
        "",
    );
    let mut c = server.client();
    assert_eq!(
        c.cmd("ETRN customer.test"),
        "554 5.7.1 <customer.test>: Etrn command rejected: no flush for you"
    );
    assert_eq!(c.cmd("ETRN other.test"), "250 Queuing started");
    assert_eq!(c.cmd("HELO bad..name"), "250 mx.towerpost.test");
    let mut c2 = server.client();
    assert_eq!(c2.cmd("HELO bad..name"), "250 mx.towerpost.test");
    assert_eq!(
        c2.cmd("ETRN third.test"),
        "501 5.5.2 <bad..name>: Helo command rejected: Invalid name"
    );
}

#[test]
fn flush_wait_reports_each_message_outcome() {
    let s = parked_sites();
    s.customer.set_rule(|stage| match stage {
        integration_tests::sink::Stage::Rcpt(r) if r.starts_with("later@") => {
            Some("451 4.2.0 mailbox busy".into())
        }
        _ => None,
    });
    let ok = send(&s.server, &["now@customer.test"]);
    let busy = send(&s.server, &["later@customer.test"]);
    wait_parked(&s.server, &ok);
    wait_parked(&s.server, &busy);
    let (status, out, err) = s
        .server
        .cli(&["flush", "--site", "customer.test", "--wait"]);
    assert!(status.success(), "{err}");
    assert!(out.contains(&format!("{ok}: sent 1\n")), "{out}");
    assert!(
        out.contains(&format!("{busy}: deferred 1 (host 127.0.0.1[127.0.0.1] said: 451 4.2.0 mailbox busy (in reply to RCPT TO command))")),
        "{out}"
    );
    assert!(out.ends_with("towerpost: flushed 2 messages\n"), "{out}");
}

#[test]
fn a_waited_flush_reports_progress_as_each_attempt_ends() {
    use std::io::{BufRead, BufReader, Write};
    let s = parked_sites();
    s.customer.set_rule(|stage| match stage {
        integration_tests::sink::Stage::Rcpt(r) if r.starts_with("later@") => {
            Some("451 4.2.0 mailbox busy".into())
        }
        _ => None,
    });
    let mut ids: Vec<String> = (0..4)
        .map(|i| send(&s.server, &[&format!("now{i}@customer.test")]))
        .collect();
    ids.push(send(&s.server, &["later@customer.test"]));
    for id in &ids {
        wait_parked(&s.server, id);
    }
    // What `towerpost flush --wait` sends: progress lines, then the answer.
    let socket = s.server.spool().join("control.sock");
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(integration_tests::WAIT))
        .unwrap();
    stream
        .write_all(
            b"{\"command\":\"flush\",\"target\":{\"site\":\"customer.test\"},\"wait\":true,\"progress\":true}\n",
        )
        .unwrap();
    let lines: Vec<serde_json::Value> = BufReader::new(stream)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "{lines:#?}");
    let mut seen = Vec::new();
    for (n, line) in lines[..5].iter().enumerate() {
        let p = &line["progress"];
        assert_eq!(p["done"], n + 1, "{line}");
        assert_eq!(p["total"], 5, "{line}");
        seen.push(p["id"].as_str().unwrap().to_owned());
    }
    let last = &lines[4]["progress"];
    assert_eq!(last["failed"], 1, "the deferred one: {lines:#?}");
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    assert_eq!(lines[5]["flushed_wait"].as_array().unwrap().len(), 5);

    // Piped, the command prints each message's line, then the summary.
    let more = send(&s.server, &["now9@customer.test"]);
    wait_parked(&s.server, &more);
    let (status, out, err) = s
        .server
        .cli(&["flush", "--site", "customer.test", "--wait"]);
    assert!(status.success(), "{err}");
    assert!(out.contains(&format!("{more}: sent 1\n")), "{out}");
    assert!(
        !out.contains('\r'),
        "no terminal redraws when piped: {out:?}"
    );
    assert!(out.ends_with("towerpost: flushed 2 messages\n"), "{out}");
}

#[test]
fn flush_racing_with_delivery_and_arrival_misses_nothing() {
    // One active message at a time, and a slow destination keeps message A
    // in delivery while ETRN arrives; B is queued behind it, never attempted
    // yet. Neither is in the index when ETRN comes.
    let customer = Sink::start();
    let slow = Sink::start();
    slow.set_rule(|stage| {
        if let integration_tests::sink::Stage::Rcpt(_) = stage {
            std::thread::sleep(Duration::from_millis(1500));
        }
        None
    });
    let server = Server::start(&format!(
        "qmgr_message_active_limit = 1\nqueue_run_delay = \"1s\"\n\
         fast_flush_domains = [\"customer.test\"]\ndefer_transports = [\"etrn-only\"]\n\
         [transport.etrn-only]\ntype = \"smtp\"\n\
         [transport_maps]\n\"customer.test\" = \"etrn-only:[127.0.0.1]:{}\"\n\"slow.test\" = \"smtp:[127.0.0.1]:{}\"\n",
        customer.addr().port(),
        slow.addr().port()
    ));
    let a = send(&server, &["x@slow.test", "a@customer.test"]);
    let b = send(&server, &["b@customer.test"]);
    server.wait_for_log(&format!("{a}: from=<a@example.test>"));
    let mut c = server.client();
    assert_eq!(c.cmd("ETRN customer.test"), "250 Queuing started");
    let got = customer.wait_for(2, Duration::from_secs(20));
    let mut rcpts: Vec<String> = got.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["a@customer.test", "b@customer.test"]);
    server.wait_for_log(&format!("{b}: removed"));
}

#[test]
fn the_binary_answers_to_postfix_command_names() {
    let s = parked_sites();
    let a = send(&s.server, &["r1@customer.test"]);
    wait_parked(&s.server, &a);
    let dir = tempfile::tempdir().unwrap();
    for name in ["postqueue", "mailq"] {
        std::os::unix::fs::symlink(integration_tests::towerpost_bin(), dir.path().join(name))
            .unwrap();
    }
    let run = |name: &str, args: &[&str]| {
        std::process::Command::new(dir.path().join(name))
            .env("TOWERPOST_CONFIG", s.server.config_path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = run("mailq", &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&a));
    let out = run("postqueue", &["-s", "other.test"]);
    assert_eq!(out.status.code(), Some(69));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "postqueue: fatal: Flush service is not configured for destination \"other.test\"\n"
    );
    let out = run("postqueue", &["-s", "customer.test"]);
    assert!(out.status.success());
    assert_eq!(s.customer.wait_for(1, Duration::from_secs(20)).len(), 1);
}

#[test]
fn check_client_access_refuses_listed_clients() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("client_access");
    std::fs::write(&table, "127.0.0.1 REJECT\n").unwrap();
    let server = etrn_with(
        &format!("[\"check_client_access {}\"]", table.display()),
        "",
    );
    let mut c = server.client();
    assert_eq!(
        c.cmd("ETRN customer.test"),
        "554 5.7.1 <unknown[127.0.0.1]>: Client host rejected: Access denied"
    );
}

/// The reproduction from the issue tracker: raising `queue_shard_count`
/// must not make delivered mail come back after the next restart.
#[test]
fn a_raised_shard_count_does_not_resend_delivered_mail() {
    let mut s = parked_sites();
    let ids: Vec<String> = (0..6)
        .map(|i| send(&s.server, &[&format!("r{i}@customer.test")]))
        .collect();
    for id in &ids {
        wait_parked(&s.server, id);
    }
    s.server.terminate();
    let config = std::fs::read_to_string(s.server.config_path()).unwrap();
    std::fs::write(
        s.server.config_path(),
        format!("queue_shard_count = 4\n{config}"),
    )
    .unwrap();
    s.server.restart();
    let mut c = s.server.client();
    assert_eq!(c.cmd("ETRN customer.test"), "250 Queuing started");
    assert_eq!(s.customer.wait_for(6, Duration::from_secs(20)).len(), 6);
    for id in &ids {
        s.server.wait_for_log(&format!("{id}: removed"));
    }
    s.server.terminate();
    s.server.restart();
    assert!(
        s.server.queue().is_empty(),
        "delivered mail is back: {:?}",
        s.server.queue_ids()
    );
}
