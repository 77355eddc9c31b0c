//! Self-tests of the SMTP sink, driven by a plain `TcpStream`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use integration_tests::sink::{Sink, Stage};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A bare-bones SMTP client.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects and returns the client with the greeting.
    fn connect(addr: SocketAddr) -> (Client, String) {
        let stream = TcpStream::connect(addr).expect("connect to sink");
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let mut client = Client {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        };
        let greeting = client.reply();
        (client, greeting)
    }

    /// Connects, checks the greeting and says EHLO.
    fn greeted(addr: SocketAddr) -> Client {
        let (mut client, greeting) = Client::connect(addr);
        assert_eq!(greeting, "220 sink.test ESMTP");
        assert!(client.cmd("EHLO client.test").starts_with("250-sink.test"));
        client
    }

    fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).expect("write");
    }

    /// Reads one reply, lines joined with "\n".
    fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read reply");
            assert!(n > 0, "connection closed; reply so far: {lines:?}");
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n"));
        self.reply()
    }

    /// Whether the server closed the connection (reads end of file).
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(self.reader.read_to_end(&mut rest), Ok(0))
    }
}

fn code(reply: &str) -> &str {
    &reply[..3]
}

#[test]
fn transaction_with_two_recipients_arrives_with_all_fields() {
    let sink = Sink::start();
    assert!(sink.addr().ip().is_loopback());
    let (mut c, greeting) = Client::connect(sink.addr());
    assert_eq!(greeting, "220 sink.test ESMTP");
    let ehlo = c.cmd("EHLO client.test");
    assert_eq!(
        ehlo,
        "250-sink.test\n250-PIPELINING\n250-SIZE 100000000\n250-ENHANCEDSTATUSCODES\n\
         250-8BITMIME\n250-DSN\n250 SMTPUTF8"
    );
    assert_eq!(
        code(&c.cmd("MAIL FROM:<a@example.test> SIZE=42 BODY=8BITMIME")),
        "250"
    );
    assert_eq!(
        code(&c.cmd("RCPT TO:<b@example.test> NOTIFY=SUCCESS,FAILURE")),
        "250"
    );
    assert_eq!(code(&c.cmd("RCPT TO:<c@example.test>")), "250");
    assert_eq!(code(&c.cmd("DATA")), "354");
    assert_eq!(
        c.cmd("Subject: hi\r\n\r\nbody\r\n."),
        "250 2.0.0 Ok: queued as 1"
    );
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    assert!(c.closed());

    let messages = sink.wait_for(1, TIMEOUT);
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.mail_from, "a@example.test");
    assert_eq!(m.mail_params, ["SIZE=42", "BODY=8BITMIME"]);
    assert_eq!(m.rcpt_to, ["b@example.test", "c@example.test"]);
    assert_eq!(
        m.rcpt_params,
        [vec!["NOTIFY=SUCCESS,FAILURE".to_owned()], vec![]]
    );
    assert_eq!(m.data, b"Subject: hi\r\n\r\nbody\r\n");
    assert_eq!(m.connection, 1);
    assert_eq!(sink.connections(), 1);
}

#[test]
fn null_sender_and_helo() {
    let sink = Sink::start();
    let (mut c, _) = Client::connect(sink.addr());
    assert_eq!(c.cmd("HELO client.test"), "250 sink.test");
    assert_eq!(code(&c.cmd("MAIL FROM:<>")), "250");
    assert_eq!(code(&c.cmd("RCPT TO:<@relay.test:d@example.test>")), "250");
    assert_eq!(code(&c.cmd("DATA")), "354");
    assert_eq!(code(&c.cmd("x\r\n.")), "250");
    let m = &sink.messages()[0];
    assert_eq!(m.mail_from, "");
    assert!(m.mail_params.is_empty());
    assert_eq!(m.rcpt_to, ["d@example.test"]);
}

#[test]
fn pipelined_commands_get_replies_in_order() {
    let sink = Sink::start();
    let mut c = Client::greeted(sink.addr());
    c.send(
        "MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n\
         RCPT TO:<>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n",
    );
    assert_eq!(c.reply(), "250 2.1.0 Ok");
    assert_eq!(c.reply(), "250 2.1.5 Ok");
    assert_eq!(code(&c.reply()), "501");
    assert_eq!(c.reply(), "250 2.1.5 Ok");
    assert_eq!(code(&c.reply()), "354");
    c.send("one\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n");
    assert_eq!(c.reply(), "250 2.0.0 Ok: queued as 1");
    assert_eq!(c.reply(), "250 2.0.0 Ok");
    assert_eq!(c.reply(), "250 2.0.0 Ok");
    assert_eq!(c.reply(), "221 2.0.0 Bye");
    assert!(c.closed());
    let m = &sink.messages()[0];
    assert_eq!(m.rcpt_to, ["b@example.test", "c@example.test"]);
    assert_eq!(m.data, b"one\r\n");
}

#[test]
fn rule_rejecting_one_recipient_keeps_the_other() {
    let sink = Sink::start();
    sink.set_rule(|stage| match stage {
        Stage::Rcpt(addr) if *addr == "bad@example.test" => {
            Some("550 5.1.1 <bad@example.test>: no such user".into())
        }
        _ => None,
    });
    let mut c = Client::greeted(sink.addr());
    c.cmd("MAIL FROM:<a@example.test>");
    assert_eq!(
        c.cmd("RCPT TO:<bad@example.test> NOTIFY=NEVER"),
        "550 5.1.1 <bad@example.test>: no such user"
    );
    assert_eq!(
        code(&c.cmd("RCPT TO:<good@example.test> ORCPT=rfc822;x@y")),
        "250"
    );
    assert_eq!(code(&c.cmd("DATA")), "354");
    assert_eq!(code(&c.cmd("body\r\n.")), "250");
    let m = &sink.wait_for(1, TIMEOUT)[0];
    assert_eq!(m.rcpt_to, ["good@example.test"]);
    assert_eq!(m.rcpt_params, [vec!["ORCPT=rfc822;x@y".to_owned()]]);
}

#[test]
fn temporary_failure_at_end_of_data_stores_nothing() {
    let sink = Sink::start();
    sink.set_rule(|stage| match stage {
        Stage::EndOfData(content) if content.starts_with(b"reject") => {
            Some("451 4.3.0 try later".into())
        }
        _ => None,
    });
    let mut c = Client::greeted(sink.addr());
    c.cmd("MAIL FROM:<a@example.test>");
    c.cmd("RCPT TO:<b@example.test>");
    assert_eq!(code(&c.cmd("DATA")), "354");
    assert_eq!(c.cmd("reject me\r\n."), "451 4.3.0 try later");
    assert!(sink.messages().is_empty());
    // The transaction is over: a new one may start at once.
    assert_eq!(code(&c.cmd("MAIL FROM:<a@example.test>")), "250");
    c.cmd("RCPT TO:<b@example.test>");
    c.cmd("DATA");
    assert_eq!(c.cmd("keep me\r\n."), "250 2.0.0 Ok: queued as 1");
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn rejection_at_mail_and_data_stages() {
    let sink = Sink::start();
    sink.set_rule(|stage| match stage {
        Stage::Mail("spammer@example.test") => Some("553 5.7.1 go away".into()),
        Stage::Data => Some("452 4.3.1 out of space".into()),
        _ => None,
    });
    let mut c = Client::greeted(sink.addr());
    assert_eq!(
        c.cmd("MAIL FROM:<spammer@example.test>"),
        "553 5.7.1 go away"
    );
    assert_eq!(code(&c.cmd("RCPT TO:<b@example.test>")), "503");
    assert_eq!(code(&c.cmd("MAIL FROM:<a@example.test>")), "250");
    assert_eq!(code(&c.cmd("RCPT TO:<b@example.test>")), "250");
    assert_eq!(c.cmd("DATA"), "452 4.3.1 out of space");
    assert_eq!(code(&c.cmd("RSET")), "250");
    assert!(sink.messages().is_empty());
}

#[test]
fn sequencing_errors() {
    let sink = Sink::start();
    let (mut c, _) = Client::connect(sink.addr());
    assert_eq!(code(&c.cmd("MAIL FROM:<a@example.test>")), "503");
    assert_eq!(code(&c.cmd("EHLO")), "501");
    c.cmd("EHLO client.test");
    assert_eq!(code(&c.cmd("RCPT TO:<b@example.test>")), "503");
    assert_eq!(code(&c.cmd("DATA")), "503");
    assert_eq!(code(&c.cmd("MAIL FROM:a@example.test")), "501");
    assert_eq!(code(&c.cmd("MAIL FROM:<a@example.test>")), "250");
    assert_eq!(code(&c.cmd("MAIL FROM:<a@example.test>")), "503");
    assert_eq!(code(&c.cmd("DATA")), "554");
    assert_eq!(code(&c.cmd("BOGUS")), "500");
    assert_eq!(code(&c.cmd("mail from:<x@example.test>")), "503");
    assert_eq!(code(&c.cmd("rcpt to:<b@example.test>")), "250");
    assert_eq!(code(&c.cmd("data")), "354");
    assert_eq!(code(&c.cmd(".")), "250");
    assert_eq!(sink.messages()[0].mail_from, "a@example.test");
    assert_eq!(sink.messages()[0].data, b"");
}

#[test]
fn two_transactions_on_one_connection_share_its_number() {
    let sink = Sink::start();
    let mut c = Client::greeted(sink.addr());
    for n in 1..=2 {
        c.cmd(&format!("MAIL FROM:<a{n}@example.test>"));
        c.cmd("RCPT TO:<b@example.test>");
        c.cmd("DATA");
        assert_eq!(c.cmd("x\r\n."), format!("250 2.0.0 Ok: queued as {n}"));
    }
    let mut other = Client::greeted(sink.addr());
    other.cmd("MAIL FROM:<a3@example.test>");
    other.cmd("RCPT TO:<b@example.test>");
    other.cmd("DATA");
    other.cmd("x\r\n.");
    let messages = sink.wait_for(3, TIMEOUT);
    let numbers: Vec<_> = messages.iter().map(|m| m.connection).collect();
    assert_eq!(numbers, [1, 1, 2]);
    assert_eq!(sink.connections(), 2);
}

#[test]
fn stop_closes_connections_and_start_on_reuses_the_port() {
    let sink = Sink::start();
    let mut idle = Client::greeted(sink.addr());
    let started = Instant::now();
    let port = sink.stop();
    assert!(started.elapsed() < Duration::from_secs(1), "stop was slow");
    assert!(idle.closed(), "stop left a connection open");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening after stop"
    );

    let sink = Sink::start_on(port);
    assert_eq!(sink.addr().port(), port);
    let mut c = Client::greeted(sink.addr());
    c.cmd("MAIL FROM:<a@example.test>");
    c.cmd("RCPT TO:<b@example.test>");
    c.cmd("DATA");
    assert_eq!(code(&c.cmd("again\r\n.")), "250");
    assert_eq!(sink.wait_for(1, TIMEOUT).len(), 1);
    assert_eq!(sink.connections(), 1);
}

#[test]
fn dot_unstuffing() {
    let sink = Sink::start();
    let mut c = Client::greeted(sink.addr());
    c.cmd("MAIL FROM:<a@example.test>");
    c.cmd("RCPT TO:<b@example.test>");
    c.cmd("DATA");
    c.send("..x\r\n..\r\n. \r\nend\r\n");
    assert_eq!(code(&c.cmd(".")), "250");
    assert_eq!(sink.messages()[0].data, b".x\r\n.\r\n \r\nend\r\n");
}

#[test]
fn reply_421_closes_the_connection() {
    let sink = Sink::start();
    sink.set_rule(|stage| match stage {
        Stage::Connect => Some("421 4.3.2 go away".into()),
        _ => None,
    });
    let (mut c, greeting) = Client::connect(sink.addr());
    assert_eq!(greeting, "421 4.3.2 go away");
    assert!(c.closed());

    sink.set_rule(|stage| match stage {
        Stage::Rcpt(_) => Some("421 4.4.5 too busy".into()),
        _ => None,
    });
    let mut c = Client::greeted(sink.addr());
    c.cmd("MAIL FROM:<a@example.test>");
    assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "421 4.4.5 too busy");
    assert!(c.closed());
    assert_eq!(sink.connections(), 2);
}

#[test]
fn rejected_greeting_serves_only_quit() {
    let sink = Sink::start();
    sink.set_rule(|stage| match stage {
        Stage::Connect => Some("554 5.3.2 no service".into()),
        _ => None,
    });
    let (mut c, greeting) = Client::connect(sink.addr());
    assert_eq!(greeting, "554 5.3.2 no service");
    assert_eq!(code(&c.cmd("EHLO client.test")), "503");
    assert_eq!(code(&c.cmd("QUIT")), "221");
    assert!(c.closed());
}

#[test]
fn ehlo_rule_replaces_the_extension_list() {
    let sink = Sink::start();
    sink.set_rule(|stage| match stage {
        Stage::Ehlo(_) => Some("250-sink.test\n250 8BITMIME".into()),
        _ => None,
    });
    let (mut c, _) = Client::connect(sink.addr());
    assert_eq!(c.cmd("EHLO client.test"), "250-sink.test\n250 8BITMIME");
}

#[test]
fn overlong_line_is_refused_and_closes() {
    let sink = Sink::start();
    let mut c = Client::greeted(sink.addr());
    let long = format!("NOOP {}\r\n", "x".repeat(10_000));
    c.send(&long);
    assert_eq!(code(&c.reply()), "500");
    assert!(c.closed());

    // A line of exactly 10 000 octets with its CRLF is fine.
    let mut c = Client::greeted(sink.addr());
    let fits = format!("NOOP {}\r\n", "x".repeat(10_000 - 7));
    assert_eq!(fits.len(), 10_000);
    c.send(&fits);
    assert_eq!(code(&c.reply()), "250");
}
