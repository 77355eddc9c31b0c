//! Table tests: one command line in, a command or a reply out.

use towerpost_protocol::{Body, Command, Notify, Ret};

fn reply(line: &str) -> String {
    Command::parse(line.as_bytes())
        .expect_err(line)
        .reply()
        .to_string()
}

#[test]
fn verbs_are_case_insensitive_and_keep_their_arguments() {
    let table: &[(&str, Command)] = &[
        (
            "HELO client.test",
            Command::Helo {
                host: "client.test".into(),
            },
        ),
        (
            "ehlo client.test",
            Command::Ehlo {
                host: "client.test".into(),
            },
        ),
        (
            "EHLO [127.0.0.1]",
            Command::Ehlo {
                host: "[127.0.0.1]".into(),
            },
        ),
        ("DATA", Command::Data),
        ("rset", Command::Rset),
        ("NOOP anything", Command::Noop),
        ("QUIT", Command::Quit),
        ("HELP", Command::Help),
        (
            "VRFY postmaster",
            Command::Vrfy {
                arg: "postmaster".into(),
            },
        ),
        (
            "ETRN example.com",
            Command::Etrn {
                node: "example.com".into(),
            },
        ),
        (
            "ETRN @example.com",
            Command::Etrn {
                node: "@example.com".into(),
            },
        ),
        ("STARTTLS", Command::StartTls),
        (
            "BDAT 100",
            Command::Bdat {
                size: 100,
                last: false,
            },
        ),
        (
            "BDAT 0 LAST",
            Command::Bdat {
                size: 0,
                last: true,
            },
        ),
        (
            "bdat 5 last",
            Command::Bdat {
                size: 5,
                last: true,
            },
        ),
        (
            "AUTH plain AGZvbwBiYXI=",
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial_response: Some("AGZvbwBiYXI=".into()),
            },
        ),
    ];
    for (line, want) in table {
        assert_eq!(&Command::parse(line.as_bytes()).unwrap(), want, "{line}");
    }
}

#[test]
fn mail_from_forms() {
    for line in [
        "MAIL FROM:<a@example.test>",
        "mail from:<a@example.test>",
        "MAIL FROM: <a@example.test>",
        "MAIL FROM:a@example.test",
        "MAIL FROM:<@relay.test:a@example.test>",
    ] {
        match Command::parse(line.as_bytes()) {
            Ok(Command::Mail { from: Some(a), .. }) => assert_eq!(a.as_str(), "a@example.test"),
            other => panic!("{line}: {other:?}"),
        }
    }
    assert!(matches!(
        Command::parse(b"MAIL FROM:<>"),
        Ok(Command::Mail { from: None, .. })
    ));
}

#[test]
fn mail_parameters() {
    let Command::Mail { params, .. } = Command::parse(
        b"MAIL FROM:<a@example.test> SIZE=1024 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2B1",
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(params.size, Some(1024));
    assert_eq!(params.body, Body::EightBitMime);
    assert!(params.smtputf8);
    assert_eq!(params.ret, Some(Ret::Headers));
    assert_eq!(params.envid.as_deref(), Some("QQ+2B1"));
}

#[test]
fn rcpt_parameters() {
    let Command::Rcpt { to, params } = Command::parse(
        b"RCPT TO:<b@example.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b@example.test",
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(to.domain(), Some("example.test"));
    assert_eq!(
        params.notify,
        Some(Notify {
            success: true,
            failure: false,
            delay: true
        })
    );
    assert_eq!(params.orcpt.as_deref(), Some("rfc822;b@example.test"));
    let Command::Rcpt { params, .. } = Command::parse(b"RCPT TO:<b@x.test> NOTIFY=NEVER").unwrap()
    else {
        panic!()
    };
    assert!(params.notify.unwrap().is_never());
    assert!(matches!(
        Command::parse(b"RCPT TO:<Postmaster>"),
        Ok(Command::Rcpt { .. })
    ));
}

#[test]
fn bad_commands_get_postfix_replies() {
    let table = [
        ("FOO bar", "502 5.5.2 Error: command not recognized"),
        ("", "500 5.5.2 Error: bad syntax"),
        ("   ", "500 5.5.2 Error: bad syntax"),
        ("NOOP\0", "500 5.5.2 Error: bad syntax"),
        ("HELO", "501 Syntax: HELO hostname"),
        ("EHLO", "501 Syntax: EHLO hostname"),
        ("MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>"),
        (
            "MAIL TO:<a@b.test>",
            "501 5.5.4 Syntax: MAIL FROM:<address>",
        ),
        (
            "MAIL FROM:<a@b.test",
            "501 5.5.4 Syntax: MAIL FROM:<address>",
        ),
        (
            "MAIL FROM:<a b@c.test>",
            "501 5.1.7 Bad sender address syntax",
        ),
        (
            "MAIL FROM:<postmaster>",
            "501 5.1.7 Bad sender address syntax",
        ),
        ("RCPT TO:<>", "501 5.5.4 Syntax: RCPT TO:<address>"),
        (
            "RCPT TO:<a@@b.test>",
            "501 5.1.3 Bad recipient address syntax",
        ),
        (
            "MAIL FROM:<a@b.test> SIZE=abc",
            "501 5.5.4 Bad message size syntax",
        ),
        (
            "MAIL FROM:<a@b.test> SIZE=",
            "501 5.5.4 Bad message size syntax",
        ),
        (
            "MAIL FROM:<a@b.test> SIZE=99999999999999999999999",
            "501 5.5.4 Bad message size syntax",
        ),
        (
            "MAIL FROM:<a@b.test> RET=ALL",
            "501 5.5.4 Bad RET parameter syntax",
        ),
        (
            "MAIL FROM:<a@b.test> RET=FULL RET=HDRS",
            "501 5.5.4 Duplicate RET parameter",
        ),
        (
            "MAIL FROM:<a@b.test> SIZE=1 size=2",
            "501 5.5.4 Duplicate SIZE parameter",
        ),
        (
            "MAIL FROM:<a@b.test> ENVID=a ENVID=b",
            "501 5.5.4 Duplicate ENVID parameter",
        ),
        (
            "RCPT TO:<a@b.test> NOTIFY=NEVER NOTIFY=SUCCESS",
            "501 5.5.4 Duplicate NOTIFY parameter",
        ),
        (
            "RCPT TO:<a@b.test> ORCPT=rfc822;a@b.test ORCPT=rfc822;c@d.test",
            "501 5.5.4 Duplicate ORCPT parameter",
        ),
        (
            "MAIL FROM:<a@b.test> ENVID=a=b",
            "501 5.5.4 Bad ENVID parameter syntax",
        ),
        (
            "MAIL FROM:<a@b.test> BODY=BINARYMIME",
            "555 5.5.4 Unsupported option: BODY=BINARYMIME",
        ),
        (
            "MAIL FROM:<a@b.test> XFOO=1",
            "555 5.5.4 Unsupported option: XFOO=1",
        ),
        (
            "RCPT TO:<a@b.test> NOTIFY=NEVER,SUCCESS",
            "501 5.5.4 Bad NOTIFY parameter syntax",
        ),
        (
            "RCPT TO:<a@b.test> NOTIFY=SOMETIMES",
            "501 5.5.4 Bad NOTIFY parameter syntax",
        ),
        (
            "RCPT TO:<a@b.test> ORCPT=b@c.test",
            "501 5.5.4 Bad ORCPT parameter syntax",
        ),
        (
            "MAIL FROM:<jörg@example.test>",
            "553 5.6.7 Must declare SMTPUTF8 to send unicode address",
        ),
        ("BDAT", "521 5.5.4 Syntax: BDAT count [LAST]"),
        ("BDAT -1", "521 5.5.4 Syntax: BDAT count [LAST]"),
        ("BDAT 10 FIRST", "521 5.5.4 Syntax: BDAT count [LAST]"),
        ("DATA now", "501 5.5.4 Syntax: DATA"),
        ("STARTTLS please", "501 5.5.4 Syntax: STARTTLS"),
    ];
    for (line, want) in table {
        assert_eq!(reply(line), want, "{line:?}");
    }
}

#[test]
fn utf8_address_is_fine_when_declared() {
    assert!(Command::parse("MAIL FROM:<jörg@bücher.test> SMTPUTF8".as_bytes()).is_ok());
    // The RCPT check depends on the transaction, so the parser accepts it
    // and reports that it is not ASCII.
    let Command::Rcpt { to, .. } = Command::parse("RCPT TO:<jörg@bücher.test>".as_bytes()).unwrap()
    else {
        panic!()
    };
    assert!(!to.is_ascii());
}

#[test]
fn long_paths_are_refused() {
    let local = "a".repeat(65);
    assert_eq!(
        reply(&format!("MAIL FROM:<{local}@example.test>")),
        "501 5.5.4 Path too long"
    );
}
