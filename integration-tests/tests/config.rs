//! The configuration file as an operator meets it.

use std::process::Command;

use integration_tests::towerpost_bin;

fn towerpost(args: &[&str], config: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("towerpost.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(towerpost_bin())
        .arg("--config")
        .arg(&path)
        .args(args)
        .env_remove("TOWERPOST_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn typo_in_a_key_fails_config_check_naming_key_and_file() {
    let (ok, _, stderr) = towerpost(&["config", "check"], "smtpd_recipent_limit = 10\n");
    assert!(!ok);
    assert!(stderr.contains("FILE"), "{stderr}");
    assert!(stderr.contains("smtpd_recipent_limit"), "{stderr}");
    assert!(
        stderr.contains("smtpd_recipient_limit"),
        "suggests the right key: {stderr}"
    );
}

#[test]
fn bad_value_names_the_key_and_what_was_expected() {
    let (ok, _, stderr) = towerpost(&["config", "check"], "smtpd_timeout = \"300\"\n");
    assert!(!ok);
    assert!(
        stderr.contains("smtpd_timeout") && stderr.contains("unit"),
        "{stderr}"
    );
    let (ok, _, stderr) = towerpost(&["config", "check"], "smtpd_forbid_bare_newline = \"no\"\n");
    assert!(!ok);
    assert!(stderr.contains("smuggling"), "{stderr}");
}

#[test]
fn serve_refuses_a_bad_config_too() {
    let (ok, _, stderr) = towerpost(&["serve"], "message_size_limit = \"big\"\n");
    assert!(!ok);
    assert!(stderr.contains("message_size_limit"), "{stderr}");
}

#[test]
fn config_check_accepts_a_good_file_and_show_lists_what_changed() {
    let (ok, stdout, stderr) = towerpost(&["config", "check"], "message_size_limit = 5000\n");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("configuration OK"));
    let (ok, stdout, _) = towerpost(
        &["config", "show"],
        "myhostname = \"mx.example.test\"\nmessage_size_limit = 5000\n",
    );
    assert!(ok);
    assert_eq!(
        stdout,
        "message_size_limit = 5000\nmyhostname = \"mx.example.test\"\n"
    );
}

/// Every file in deploy/examples passes `config check`. The files they
/// name under /etc/towerpost/ are made in a temporary directory (the
/// tables with one valid line, as an operator following deploy/README.md
/// would have them).
#[test]
fn shipped_example_configs_are_valid() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples");
    let etc = tempfile::tempdir().unwrap();
    let tables = [
        ("sender_logins", "alice@example.com alice@example.com\n"),
        ("sasl_passwd", "[smtp.provider.example]:587 relay:secret\n"),
        ("customer_recipients", "info@customer.example x\n"),
        ("etrn_clients", "192.0.2.10 OK\n"),
        ("passwd", ""),
    ];
    for (name, text) in tables {
        std::fs::write(etc.path().join(name), text).unwrap();
    }
    let mut checked = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("/etc/towerpost/", &format!("{}/", etc.path().display()));
        let (ok, stdout, stderr) = towerpost(&["config", "check"], &text);
        assert!(ok, "{}: {stderr}", path.display());
        assert!(stdout.contains("configuration OK"));
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} examples found");
}

#[test]
fn config_check_refuses_an_open_relay_naming_the_key() {
    let (ok, _, stderr) = towerpost(
        &["config", "check"],
        "smtpd_relay_restrictions = \"permit\"\n",
    );
    assert!(!ok);
    assert!(
        stderr.contains(
            "FILE: key 'smtpd_relay_restrictions': neither smtpd_relay_restrictions nor \
             smtpd_recipient_restrictions contains reject, defer, reject_unauth_destination or \
             defer_unauth_destination: that would make an open relay (listener 'smtp')"
        ),
        "{stderr}"
    );
    let unreachable = "smtpd_relay_restrictions = \"permit, reject_unauth_destination\"\n";
    let (ok, _, stderr) = towerpost(&["config", "check"], unreachable);
    assert!(!ok, "a safeguard after permit is never reached");
    assert!(stderr.contains("would make an open relay"), "{stderr}");
    let listener = "[[listener]]\nname = \"submission\"\naddress = \"127.0.0.1:0\"\n\
         smtpd_relay_restrictions = \"permit_mynetworks\"\n";
    let (ok, _, stderr) = towerpost(&["config", "check"], listener);
    assert!(!ok);
    assert!(
        stderr.contains("listener 'submission': neither smtpd_relay_restrictions"),
        "{stderr}"
    );
}

/// The README's first command runs towerpost with a relative
/// `queue_directory` (`spool`, the default): creating it must work from
/// any working directory (the parent of `spool` is "", which is not a
/// directory one can open and fsync).
#[test]
fn serve_creates_a_relative_queue_directory() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("towerpost.toml"),
        "myhostname = \"mx.towerpost.test\"\nqueue_directory = \"spool\"\n\
         [[listener]]\nname = \"smtp\"\naddress = \"127.0.0.1:0\"\ntls = \"none\"\n",
    )
    .unwrap();
    let mut child = Command::new(towerpost_bin())
        .args(["--config", "towerpost.toml", "serve"])
        .current_dir(dir.path())
        .env_remove("TOWERPOST_CONFIG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    for line in lines.by_ref().map_while(Result::ok).take(50) {
        if let Some(rest) = line.split(" listener smtp on ").nth(1) {
            addr = Some(rest.trim().to_owned());
            break;
        }
        assert!(!line.contains("fatal"), "{line}");
    }
    let addr = addr.expect("the listener started").parse().unwrap();
    let mut c = integration_tests::Client::connect(addr);
    let reply = c.send_mail(
        "a@example.test",
        &["b@example.test"],
        "Subject: x\r\n\r\ny\r\n",
    );
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    let _ = child.kill();
    let _ = child.wait();
    assert!(dir.path().join("spool/queue/shard-000.redb").exists());
}
