//! SMTP smuggling (CVE-2023-51764 and relatives): no sequence but
//! `<CRLF>.<CRLF>` may end DATA, so one DATA never becomes two messages.

use integration_tests::{Server, queued_id};

const SEQUENCES: &[(&str, &str)] = &[
    ("<LF>.<LF>", "\n.\n"),
    ("<LF>.<CR><LF>", "\n.\r\n"),
    ("<CR><LF>.<LF>", "\r\n.\n"),
    ("<CR>.<CR>", "\r.\r"),
    ("<CR><LF>.<CR>", "\r\n.\r"),
];

#[test]
fn no_smuggling_sequence_ends_data() {
    for forbid in ["normalize", "reject"] {
        let server = Server::start(&format!("smtpd_forbid_bare_newline = \"{forbid}\""));
        for (name, seq) in SEQUENCES {
            let mut c = server.client();
            assert!(c.cmd("EHLO client.test").starts_with("250"));
            assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
            assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
            assert!(c.cmd("DATA").starts_with("354"));
            let payload = format!(
                "Subject: first\r\n\r\nbody{seq}MAIL FROM:<admin@example.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nspoofed\r\n.\r\n"
            );
            c.send(payload.as_bytes());
            // Exactly one answer for the whole payload: either the single
            // message is queued, or (reject mode, bare LF) refused.
            let reply = c.read_reply();
            assert!(
                reply.starts_with("250 2.0.0 Ok: queued as")
                    || (forbid == "reject" && reply.starts_with("550 5.5.2")),
                "{forbid} {name}: {reply}"
            );
            assert_eq!(
                c.cmd("NOOP"),
                "250 2.0.0 Ok",
                "{forbid} {name}: stream out of step"
            );
            assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
        }
        let queue = server.queue();
        for m in &queue {
            let rcpts = m["recipients"].as_array().unwrap();
            assert_eq!(rcpts.len(), 1);
            assert_eq!(
                rcpts[0]["address"], "b@example.test",
                "{forbid}: smuggled message queued"
            );
        }
        if forbid == "normalize" {
            assert_eq!(queue.len(), SEQUENCES.len(), "one message per DATA");
        }
    }
}

#[test]
fn smuggled_content_stays_inside_the_first_message() {
    let server = Server::start("");
    let mut c = server.client();
    let reply = c.send_mail(
        "a@example.test",
        &["b@example.test"],
        "Subject: first\r\n\r\nbody\n.\nMAIL FROM:<admin@example.test>\r\n",
    );
    queued_id(&reply);
    assert_eq!(server.queue().len(), 1);
    assert!(!server.log().contains("admin@example.test"));
}
