//! Transactions through the real binary with the Rust client.

use integration_tests::{Client, Server, queued_id};

#[test]
fn full_transaction_is_queued_and_listed() {
    let server = Server::start("");
    let mut c = server.client();
    assert!(
        c.greeting
            .starts_with("220 mx.towerpost.test ESMTP towerpost")
    );
    let ehlo = c.cmd("EHLO client.test");
    for keyword in [
        "PIPELINING",
        "SIZE 10240000",
        "ETRN",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "DSN",
        "SMTPUTF8",
        "CHUNKING",
    ] {
        assert!(ehlo.contains(keyword), "EHLO lacks {keyword}: {ehlo}");
    }
    let reply = c.send_mail(
        "a@example.test",
        &["b@example.test", "c@example.test"],
        "Subject: hello\r\n\r\nbody\r\n",
    );
    let id = queued_id(&reply);
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");

    let queue = server.queue();
    assert_eq!(queue.len(), 1);
    let m = &queue[0];
    assert_eq!(m["queue_id"], id.as_str());
    assert_eq!(m["sender"], "a@example.test");
    assert_eq!(m["recipients"][0]["address"], "b@example.test");
    assert_eq!(m["recipients"][1]["address"], "c@example.test");

    let (status, listing, _) = server.cli(&["queue", "list"]);
    assert!(status.success());
    assert!(listing.starts_with("-Queue ID-  --Size--"), "{listing}");
    assert!(listing.contains(&id) && listing.contains("a@example.test"));
    assert!(listing.contains("-- 0 Kbytes in 1 Request."), "{listing}");
    server.wait_for_log(&format!("{id}: client=unknown[127.0.0.1]"));
    server.wait_for_log(
        "disconnect from unknown[127.0.0.1] ehlo=2 mail=1 rcpt=2 data=1 quit=1 commands=7",
    );
}

#[test]
fn received_header_is_prepended() {
    let server = Server::start("");
    let mut c = server.client();
    let reply = c.send_mail(
        "a@example.test",
        &["b@example.test"],
        "Subject: x\r\n\r\nhi\r\n",
    );
    let id = queued_id(&reply);
    let size = server.queue()[0]["message_size"].as_u64().unwrap();
    // The Received header is stored with the message: it is larger than
    // what the client sent.
    assert!(size > 40, "size {size}");
    server.wait_for_log(&format!(
        "{id}: from=<a@example.test>, size={size}, nrcpt=1"
    ));
}

#[test]
fn pipelined_mail_rcpt_data_get_replies_in_order() {
    let server = Server::start("");
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<bad address>\r\nRCPT TO:<d@example.test>\r\nDATA\r\n");
    assert_eq!(c.read_reply(), "250 2.1.0 Ok");
    assert_eq!(c.read_reply(), "250 2.1.5 Ok");
    assert_eq!(c.read_reply(), "501 5.1.3 Bad recipient address syntax");
    assert_eq!(c.read_reply(), "250 2.1.5 Ok");
    assert!(c.read_reply().starts_with("354"));
    c.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    queued_id(&c.read_reply());
    assert_eq!(c.read_reply(), "221 2.0.0 Bye");
    assert_eq!(server.queue()[0]["recipients"].as_array().unwrap().len(), 2);
}

#[test]
fn commands_pipelined_without_esmtp_are_a_synchronization_error() {
    let server = Server::start("");
    let mut c = server.client();
    c.send(b"HELO client.test\r\nMAIL FROM:<a@example.test>\r\n");
    assert_eq!(
        c.read_reply(),
        "554 5.5.0 Error: SMTP protocol synchronization"
    );
    assert!(c.is_closed());
    server.wait_for_log("improper command pipelining after HELO");
}

#[test]
fn talking_before_the_greeting_is_a_synchronization_error() {
    let server = Server::start("");
    let mut c = Client::connect_silent(server.addr());
    c.send(b"EHLO eager.test\r\n");
    // The server may have sent its banner just before our bytes arrived;
    // either way the client never gets to run a transaction.
    let first = c.read_reply();
    if first.starts_with("220") {
        assert!(c.read_reply().starts_with("250"));
    } else {
        assert_eq!(first, "554 5.5.0 Error: SMTP protocol synchronization");
    }
}

#[test]
fn bdat_chunks_make_one_message() {
    let server = Server::start("");
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
    let first = b"Subject: chunked\r\n\r\n";
    c.send(format!("BDAT {}\r\n", first.len()).as_bytes());
    c.send(first);
    assert_eq!(
        c.read_reply(),
        format!("250 2.0.0 Ok: {} bytes", first.len())
    );
    // A chunk may contain anything, a lone dot line included, and the next
    // command may follow it in the same write.
    let last = b"line\r\n.\r\nend\r\n";
    c.send(format!("BDAT {} LAST\r\n", last.len()).as_bytes());
    c.send(last);
    c.send(b"NOOP\r\n");
    let id = queued_id(&c.read_reply());
    assert_eq!(c.read_reply(), "250 2.0.0 Ok");
    assert_eq!(server.queue_ids(), vec![id]);
}

#[test]
fn bdat_without_recipients_is_refused_but_its_bytes_are_consumed() {
    let server = Server::start("");
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    c.send(b"BDAT 12\r\nQUIT\r\nQUIT\r\n");
    assert_eq!(c.read_reply(), "503 5.5.1 Error: need MAIL command");
    c.send(b"NOOP\r\n");
    assert_eq!(c.read_reply(), "250 2.0.0 Ok");
    assert_eq!(c.cmd("BDAT 1x"), "521 5.5.4 Syntax: BDAT count [LAST]");
    assert!(c.is_closed());
}

#[test]
fn sequence_errors_get_503() {
    let server = Server::start("");
    let mut c = server.client();
    assert_eq!(
        c.cmd("RCPT TO:<b@example.test>"),
        "503 5.5.1 Error: need MAIL command"
    );
    assert_eq!(c.cmd("DATA"), "503 5.5.1 Error: need MAIL command");
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.test>"),
        "503 5.5.1 Error: nested MAIL command"
    );
    assert_eq!(c.cmd("DATA"), "503 5.5.1 Error: need RCPT command");
    assert_eq!(
        c.cmd("ETRN example.test"),
        "503 Error: MAIL transaction in progress"
    );
    assert_eq!(c.cmd("RSET"), "250 2.0.0 Ok");
    assert_eq!(
        c.cmd("ETRN example.test"),
        "459 <example.test>: service unavailable"
    );
    assert_eq!(c.cmd("VRFY someone"), "252 2.0.0 someone");
    assert_eq!(c.cmd("FOO"), "502 5.5.2 Error: command not recognized");
    assert_eq!(
        c.cmd("STARTTLS"),
        "502 5.5.1 Error: command not implemented"
    );
    assert_eq!(
        c.cmd("AUTH PLAIN"),
        "503 5.5.1 Error: authentication not enabled"
    );
}

#[test]
fn helo_required_refuses_mail_before_helo() {
    let server = Server::start("smtpd_helo_required = true");
    let mut c = server.client();
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.test>"),
        "503 5.5.1 Error: send HELO/EHLO first"
    );
    assert_eq!(
        c.cmd("ETRN example.test"),
        "503 Error: send HELO/EHLO first"
    );
    assert_eq!(c.cmd("HELO client.test"), "250 mx.towerpost.test");
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
}

#[test]
fn non_ascii_recipient_needs_smtputf8() {
    let server = Server::start("");
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(
        c.cmd("RCPT TO:<jörg@bücher.test>"),
        "553 5.6.7 Must declare SMTPUTF8 to send unicode address"
    );
    assert_eq!(c.cmd("RSET"), "250 2.0.0 Ok");
    assert_eq!(c.cmd("MAIL FROM:<a@example.test> SMTPUTF8"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<jörg@bücher.test>"), "250 2.1.5 Ok");
}
