//! The `ETRN` argument, checked as Postfix 3.7's `etrn_cmd()` checks it:
//! smtpd's tokenizer, one leading `@`/`#`, `valid_hostname()` or
//! `valid_mailhost_literal()`. The expected answers were worked out from
//! Postfix's source (smtpd.c, smtpd_token.c, valid_hostname.c,
//! valid_mailhost_addr.c) case by case.

use towerpost_protocol::{EtrnError, etrn_site};

const OK: Result<(), EtrnError> = Ok(());
const COUNT: Result<(), EtrnError> = Err(EtrnError::Count);
const SYNTAX: Result<(), EtrnError> = Err(EtrnError::Syntax);

#[test]
fn etrn_arguments_are_judged_like_postfix() {
    let long255 = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    let long256 = "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.ab";
    let dot256 = format!("{long255}.");
    let label63 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.com";
    let label64 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.com";
    let table: &[(&str, Result<(), EtrnError>)] = &[
        ("example.com", OK),
        ("Example.COM", OK),
        ("@example.com", OK),
        ("#example.com", OK),
        ("a--b.example.com", OK),
        ("ab--cd.example.com", OK),
        ("_dmarc.example.com", OK),
        ("a_b.example.net", OK),
        ("_", OK),
        ("1.2.3.com", OK),
        ("example.123", OK),
        ("1-2.net", OK),
        (label63, OK),
        (long255, OK),
        ("[1.2.3.4]", OK),
        ("@[1.2.3.4]", OK),
        ("[0.0.0.0]", OK),
        ("[01.2.3.4]", OK),
        ("[IPv6:2001:DB8::1]", OK),
        ("[ipv6:2001:db8::1]", OK),
        ("[IPv6:1:2:3]", OK),
        ("[IPv6:::ffff:1.2.3.4]", OK),
        ("[IPv6:1::]", OK),
        ("@", SYNTAX),
        ("#", SYNTAX),
        ("@@example.com", SYNTAX),
        ("#@example.com", SYNTAX),
        ("example.com.", SYNTAX),
        (".", SYNTAX),
        (".example.com", SYNTAX),
        ("a..b.example.com", SYNTAX),
        ("-a.example.com", SYNTAX),
        ("a-.example.com", SYNTAX),
        ("123", SYNTAX),
        ("1.2.3.4", SYNTAX),
        (label64, SYNTAX),
        (long256, SYNTAX),
        (&dot256, SYNTAX),
        ("[1.2.3]", SYNTAX),
        ("[256.1.1.1]", SYNTAX),
        ("[1.2.3.4.]", SYNTAX),
        ("[0.1.2.3]", SYNTAX),
        ("[1.2.3.4]x", SYNTAX),
        ("[1.2.3.4]]", SYNTAX),
        ("[::1]", SYNTAX),
        ("[IPv6:1.2.3.4]", SYNTAX),
        ("[IPv6:1:2:3:4:5:6:7::]", SYNTAX),
        (
            "[IPv6:ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]",
            SYNTAX,
        ),
        ("[IPv6:fe80::1%eth0]", SYNTAX),
        ("\"example.com\"", SYNTAX),
        ("<example.com>", SYNTAX),
        ("\"a b\"", SYNTAX),
        ("<a b>", SYNTAX),
        ("a\\ b", SYNTAX),
        ("bücher.de", SYNTAX),
        ("bad_domain!", SYNTAX),
        ("", COUNT),
        ("   ", COUNT),
        ("example.com extra", COUNT),
        ("to:example.com", COUNT),
        ("from:x", COUNT),
        ("a\x0bb", COUNT),
    ];
    for (arg, want) in table {
        let got = etrn_site(arg).map(|_| ());
        assert_eq!(got, *want, "ETRN {arg:?}");
    }
    assert_eq!(
        etrn_site("@Example.COM"),
        Ok("Example.COM"),
        "case kept, one @ dropped"
    );
    assert_eq!(
        EtrnError::Count.reply().to_string(),
        "500 Syntax: ETRN domain"
    );
    assert_eq!(
        EtrnError::Syntax.reply().to_string(),
        "501 Error: invalid parameter syntax"
    );
}
