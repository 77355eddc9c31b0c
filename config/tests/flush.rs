//! Fast flush and ETRN settings: fast_flush_domains, fast_flush_*_time,
//! smtpd_etrn_restrictions (with access tables) and authorized_flush_users.

mod common;
use common::{file, load};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use towerpost_config::{AccessAction, AccessTable, Config, Restriction, UserPattern, UserRule};

/// The error's text, with the configuration file's path replaced by `FILE`
/// and each of `paths` by `TABLE`.
fn error_text(contents: &str, paths: &[&Path]) -> String {
    let mut text = common::error_text(contents);
    for path in paths {
        text = text.replace(&path.display().to_string(), "TABLE");
    }
    text
}

/// A TOML basic string of a path.
fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn reject(text: &str) -> AccessAction {
    AccessAction::Reject(Some(text.to_owned()))
}

const ETRN_TABLE: &str = "\
# ETRN access
example.com        OK
.example.net       REJECT  no subdomains of example.net here
EXAMPLE.net        DEFER
blocked.example.com
    554 5.7.1 blocked site

dunno.example.com  DUNNO
# user@ keys are ignored for ETRN
user@example.org   REJECT
reply.example      450 4.7.1 later please
bare.example       reject
";

#[test]
fn defaults_are_postfix_defaults() {
    let config = Config::load_with_env(None, &[]).unwrap();
    assert!(config.fast_flush_domains.is_empty());
    assert_eq!(
        config.fast_flush_refresh_time,
        Duration::from_secs(12 * 3600)
    );
    assert_eq!(
        config.fast_flush_purge_time,
        Duration::from_secs(7 * 24 * 3600)
    );
    assert!(config.smtpd_etrn_restrictions.is_empty());
    assert_eq!(
        config.authorized_flush_users,
        [UserRule {
            exclude: false,
            pattern: UserPattern::Anyone
        }]
    );
    assert!(config.flush_user_allowed("anyone"));
    assert!(config.flush_user_allowed("unknown"));
    assert!(!config.fast_flush_eligible("example.com"));
    assert_eq!(config, Config::default());
}

#[test]
fn fast_flush_domains_follow_relay_domains() {
    let config =
        load(r#"relay_domains = ["Example.COM.", ".sub.example", "other.example"]"#).unwrap();
    assert_eq!(
        config.fast_flush_domains,
        ["example.com", ".sub.example", "other.example"]
    );
    // Following relay_domains is the default, so it is not listed.
    let keys: Vec<String> = config
        .non_default_settings()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["relay_domains"]);

    let config =
        Config::load_with_env(None, &[("TOWERPOST_RELAY_DOMAINS", "a.example b.example")]).unwrap();
    assert_eq!(config.fast_flush_domains, ["a.example", "b.example"]);
}

#[test]
fn an_explicit_fast_flush_domains_overrides_relay_domains() {
    let config = load(
        r#"
        relay_domains = "example.com"
        fast_flush_domains = "Customer.Example. [192.0.2.1] [IPv6:2001:DB8::1]"
        "#,
    )
    .unwrap();
    assert_eq!(
        config.fast_flush_domains,
        ["customer.example", "[192.0.2.1]", "[ipv6:2001:db8::1]"]
    );
    assert!(!config.fast_flush_eligible("example.com"));

    let config = load("relay_domains = \"example.com\"\nfast_flush_domains = []\n").unwrap();
    assert!(config.fast_flush_domains.is_empty());
    assert!(
        config
            .non_default_settings()
            .contains(&("fast_flush_domains".to_owned(), "[]".to_owned()))
    );

    let config = load("fast_flush_domains = \"$relay_domains, extra.example\"").unwrap();
    assert_eq!(config.fast_flush_domains, ["extra.example"]);
}

#[test]
fn bad_fast_flush_domains_name_the_key() {
    let text = error_text("fast_flush_domains = \"hash:/etc/postfix/flush\"\n", &[]);
    assert_eq!(
        text,
        "FILE: key 'fast_flush_domains': expected domain names such as \"example.com\" or \
         address literals such as \"[192.0.2.1]\", found \"hash:/etc/postfix/flush\" \
         (lookup tables and files are not supported)"
    );
    let error = load("fast_flush_domains = \"[example.com]\"").unwrap_err();
    assert_eq!(error.keys(), ["fast_flush_domains"]);
    // An invalid relay_domains is reported once, not again through the
    // default of fast_flush_domains.
    let error = load("relay_domains = \"hash:/etc/postfix/relay\"").unwrap_err();
    assert_eq!(error.keys(), ["relay_domains"], "{error}");
    assert_eq!(error.problems().count(), 1, "{error}");
}

#[test]
fn eligibility_matches_parent_domains_case_and_trailing_dot() {
    let config = load(
        r#"fast_flush_domains = ["example.com", ".sub.example", "[192.0.2.1]", "[ipv6:2001:db8::1]"]"#,
    )
    .unwrap();
    for domain in [
        "example.com",
        "EXAMPLE.COM",
        "example.com.",
        "mail.example.com",
        "a.b.Example.Com.",
        "x.sub.example",
        "[192.0.2.1]",
        "[IPv6:2001:DB8:0::1]",
    ] {
        assert!(config.fast_flush_eligible(domain), "{domain}");
    }
    for domain in [
        "sub.example",
        "badexample.com",
        "example.com.org",
        "com",
        "",
        ".",
        "[192.0.2.2]",
        "192.0.2.1",
        "[bogus]",
    ] {
        assert!(!config.fast_flush_eligible(domain), "{domain}");
    }
}

#[test]
fn durations_are_checked() {
    let config = load(
        r#"
        fast_flush_refresh_time = "1h"
        fast_flush_purge_time = "3d"
        "#,
    )
    .unwrap();
    assert_eq!(config.fast_flush_refresh_time, Duration::from_secs(3600));
    assert_eq!(config.fast_flush_purge_time, Duration::from_secs(3 * 86400));
    let error = load("fast_flush_refresh_time = \"0s\"").unwrap_err();
    assert_eq!(error.keys(), ["fast_flush_refresh_time"]);
    let text = error_text("fast_flush_purge_time = \"7\"\n", &[]);
    assert_eq!(
        text,
        "FILE: key 'fast_flush_purge_time': expected a duration with a unit such as \"300s\" \
         or \"5m\", found \"7\""
    );
}

#[test]
fn restrictions_parse_from_a_toml_array() {
    let table = file(ETRN_TABLE);
    let config = load(&format!(
        "smtpd_etrn_restrictions = [\"permit_mynetworks\", \"check_etrn_access {}\", \
         \"Permit_SASL_Authenticated\", \"reject_invalid_helo_hostname\", \"defer\", \
         \"permit\", \"reject\"]",
        table.path().display()
    ))
    .unwrap();
    let names: Vec<&str> = config
        .smtpd_etrn_restrictions
        .iter()
        .map(Restriction::name)
        .collect();
    assert_eq!(
        names,
        [
            "permit_mynetworks",
            "check_etrn_access",
            "permit_sasl_authenticated",
            "reject_invalid_helo_hostname",
            "defer",
            "permit",
            "reject"
        ]
    );
    let Restriction::CheckEtrnAccess(table_read) = &config.smtpd_etrn_restrictions[1] else {
        panic!(
            "not check_etrn_access: {:?}",
            config.smtpd_etrn_restrictions[1]
        );
    };
    assert_eq!(table_read.path, table.path());
    assert_eq!(table_read.len(), 7);
}

#[test]
fn restrictions_parse_from_a_postfix_string() {
    let etrn = file(ETRN_TABLE);
    let clients = file("192.0.2 REJECT\n");
    let config = load(&format!(
        "smtpd_etrn_restrictions = \"permit_mynetworks, check_etrn_access {}, \
         check_client_access texthash:{}, reject\"",
        etrn.path().display(),
        clients.path().display()
    ))
    .unwrap();
    let etrn_table = AccessTable::load(etrn.path()).unwrap();
    let client_table = AccessTable::load(clients.path()).unwrap();
    assert_eq!(
        config.smtpd_etrn_restrictions,
        [
            Restriction::PermitMynetworks,
            Restriction::CheckEtrnAccess(etrn_table),
            Restriction::CheckClientAccess(client_table),
            Restriction::Reject,
        ]
    );
    let shown: Vec<String> = config
        .smtpd_etrn_restrictions
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shown,
        [
            "permit_mynetworks".to_owned(),
            format!("check_etrn_access {}", etrn.path().display()),
            format!("check_client_access {}", clients.path().display()),
            "reject".to_owned(),
        ]
    );
}

#[test]
fn restrictions_work_from_the_environment() {
    let config = Config::load_with_env(
        None,
        &[(
            "TOWERPOST_SMTPD_ETRN_RESTRICTIONS",
            "permit_mynetworks, reject",
        )],
    )
    .unwrap();
    assert_eq!(
        config.smtpd_etrn_restrictions,
        [Restriction::PermitMynetworks, Restriction::Reject]
    );
}

#[test]
fn unknown_restriction_names_the_key_and_the_word() {
    let text = error_text(
        "smtpd_etrn_restrictions = \"permit_mynetwork, reject\"\n",
        &[],
    );
    assert_eq!(
        text,
        "FILE: key 'smtpd_etrn_restrictions': unknown restriction 'permit_mynetwork' \
         (did you mean 'permit_mynetworks'?)"
    );
    let text = error_text("smtpd_etrn_restrictions = [\"frobnicate\"]\n", &[]);
    assert_eq!(
        text,
        "FILE: key 'smtpd_etrn_restrictions': unknown restriction 'frobnicate'"
    );
    let error = load("smtpd_etrn_restrictions = \"reject_rbl_client zen.example\"").unwrap_err();
    assert!(error.is_invalid_value());
    assert_eq!(error.keys(), ["smtpd_etrn_restrictions"]);
    assert!(
        error
            .to_string()
            .contains("restriction 'reject_rbl_client' is not supported"),
        "{error}"
    );
}

#[test]
fn table_restrictions_need_a_text_file() {
    let text = error_text(
        "smtpd_etrn_restrictions = \"check_etrn_access hash:/etc/postfix/etrn\"\n",
        &[],
    );
    assert_eq!(
        text,
        "FILE: key 'smtpd_etrn_restrictions': check_etrn_access hash:/etc/postfix/etrn: table \
         type 'hash' is not supported; use a text file in access(5) syntax, as in \
         \"check_etrn_access /etc/postfix/etrn\" or \"check_etrn_access \
         texthash:/etc/postfix/etrn\""
    );
    for missing in [
        "check_etrn_access",
        "check_client_access, reject",
        "check_etrn_access permit",
    ] {
        let text = error_text(&format!("smtpd_etrn_restrictions = \"{missing}\"\n"), &[]);
        assert!(text.contains("needs a table"), "{missing}: {text}");
    }
}

#[test]
fn a_missing_table_file_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent");
    let text = error_text(
        &format!(
            "smtpd_etrn_restrictions = \"check_etrn_access {}\"\n",
            path.display()
        ),
        &[&path],
    );
    assert!(
        text.starts_with(
            "FILE: key 'smtpd_etrn_restrictions': check_etrn_access TABLE: cannot read the \
             access table TABLE: "
        ),
        "{text}"
    );
}

#[test]
fn bad_table_lines_are_reported_with_file_and_line() {
    let table = file(
        "# comment\n\
         example.com OK\n\
         \n\
         example.org HOLD\n\
         192.0.2.0/24 REJECT\n\
         lonely.example\n\
         example.com REJECT\n\
         numeric.example 550\n\
         code.example 250 fine\n",
    );
    let path = table.path();
    let text = error_text(
        &format!(
            "smtpd_etrn_restrictions = [\"check_etrn_access {}\"]\n",
            path.display()
        ),
        &[path],
    );
    let prefix = "FILE: key 'smtpd_etrn_restrictions': check_etrn_access TABLE: TABLE";
    let expected = [
        format!(
            "{prefix}:4: entry \"example.org\": action \"HOLD\" is not supported; expected OK, \
             DUNNO, REJECT [text], DEFER [text] or a reply code and text such as \"550 Access \
             denied\""
        ),
        format!(
            "{prefix}:5: expected a domain, \".domain\", an IP address or prefix, or \
             user@domain as the key, found \"192.0.2.0/24\" (use an address or a prefix such \
             as \"192.0.2\", not a network/mask)"
        ),
        format!(
            "{prefix}:6: expected \"key action\", found \"lonely.example\" (missing the \
             action; expected OK, DUNNO, REJECT [text], DEFER [text] or a reply code and text \
             such as \"550 Access denied\")"
        ),
        format!("{prefix}:7: duplicate key \"example.com\" (first on line 2)"),
        format!(
            "{prefix}:8: entry \"numeric.example\": a number alone (which Postfix takes as \
             OK) is not supported; write OK, or a reply code with text such as \"550 Access \
             denied\", found \"550\""
        ),
        format!(
            "{prefix}:9: entry \"code.example\": expected a reply code from 400 to 599 \
             followed by text, found \"250 fine\""
        ),
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{text}");
}

#[test]
fn table_files_parse_comments_actions_and_replies() {
    let table = AccessTable::parse("etrn", ETRN_TABLE).unwrap();
    let entries: Vec<(&str, String)> = table
        .entries()
        .map(|(key, action)| (key, action.to_string()))
        .collect();
    assert_eq!(
        entries,
        [
            (
                ".example.net",
                "REJECT no subdomains of example.net here".to_owned()
            ),
            ("bare.example", "REJECT".to_owned()),
            ("blocked.example.com", "554 5.7.1 blocked site".to_owned()),
            ("dunno.example.com", "DUNNO".to_owned()),
            ("example.com", "OK".to_owned()),
            ("example.net", "DEFER".to_owned()),
            ("reply.example", "450 4.7.1 later please".to_owned()),
        ]
    );
    assert_eq!(
        table.lookup_domain("blocked.example.com"),
        Some(&AccessAction::Reply {
            code: 554,
            text: "5.7.1 blocked site".to_owned()
        })
    );
    assert_eq!(
        table.lookup_domain("bare.example"),
        Some(&AccessAction::Reject(None))
    );
    assert_eq!(
        table.lookup_domain("example.net"),
        Some(&AccessAction::Defer(None))
    );
}

#[test]
fn lookup_domain_takes_the_closest_match() {
    let table = AccessTable::parse(
        "t",
        "example.com OK\n\
         .example.net REJECT dot\n\
         deep.example.com REJECT deep\n\
         dunno.example.com DUNNO\n",
    )
    .unwrap();
    assert_eq!(table.lookup_domain("example.com"), Some(&AccessAction::Ok));
    assert_eq!(
        table.lookup_domain("a.b.example.com"),
        Some(&AccessAction::Ok)
    );
    assert_eq!(
        table.lookup_domain("Deep.Example.COM."),
        Some(&reject("deep"))
    );
    assert_eq!(
        table.lookup_domain("x.deep.example.com"),
        Some(&reject("deep"))
    );
    // DUNNO is a match: it stops the lookup before example.com.
    assert_eq!(
        table.lookup_domain("x.dunno.example.com"),
        Some(&AccessAction::Dunno)
    );
    // .example.net matches subdomains only.
    assert_eq!(table.lookup_domain("example.net"), None);
    assert_eq!(table.lookup_domain("a.example.net"), Some(&reject("dot")));
    assert_eq!(table.lookup_domain("notexample.com"), None);
    assert_eq!(table.lookup_domain(""), None);

    // At the same level, .domain comes before domain.
    let table = AccessTable::parse("t", "example.org OK\n.example.org REJECT dot\n").unwrap();
    assert_eq!(table.lookup_domain("a.example.org"), Some(&reject("dot")));
    assert_eq!(table.lookup_domain("example.org"), Some(&AccessAction::Ok));
}

#[test]
fn lookup_client_tries_the_name_then_address_prefixes() {
    let table = AccessTable::parse(
        "t",
        "192.0.2.1 REJECT host\n\
         192.0.2 REJECT net24\n\
         198.51 REJECT net16\n\
         10 OK\n\
         2001:db8::1 REJECT v6host\n\
         2001:db8 REJECT v6net\n\
         client.example DEFER name\n",
    )
    .unwrap();
    let look = |addr: &str, name: Option<&str>| table.lookup_client(ip(addr), name).cloned();
    assert_eq!(look("192.0.2.1", None), Some(reject("host")));
    assert_eq!(look("192.0.2.99", None), Some(reject("net24")));
    assert_eq!(look("198.51.100.7", None), Some(reject("net16")));
    assert_eq!(look("10.1.2.3", None), Some(AccessAction::Ok));
    assert_eq!(look("203.0.113.1", None), None);
    assert_eq!(look("2001:db8::1", None), Some(reject("v6host")));
    assert_eq!(look("2001:DB8:1::5", None), Some(reject("v6net")));
    // As in Postfix, IPv6 prefixes are cut from the compressed text form:
    // 2001:db8::1:0:0:5 is tried as 2001:db8::1:0:0, 2001:db8::1:0 and then
    // 2001:db8::1, which is the host entry.
    assert_eq!(look("2001:DB8:0:0:1::5", None), Some(reject("v6host")));
    assert_eq!(look("2001:db9::1", None), None);
    assert_eq!(look("::ffff:192.0.2.1", None), Some(reject("host")));
    // The host name (and its parent domains) comes first, as in Postfix.
    let deferred = Some(AccessAction::Defer(Some("name".to_owned())));
    assert_eq!(look("192.0.2.1", Some("mx.Client.Example.")), deferred);
    assert_eq!(
        look("192.0.2.1", Some("other.example")),
        Some(reject("host"))
    );
}

#[test]
fn authorized_flush_users_first_match_wins() {
    let config =
        load(r#"authorized_flush_users = "!Mallory, alice, !bob, static:anyone""#).unwrap();
    assert!(config.flush_user_allowed("alice"));
    assert!(config.flush_user_allowed("ALICE"));
    assert!(!config.flush_user_allowed("mallory"));
    assert!(!config.flush_user_allowed("bob"));
    assert!(config.flush_user_allowed("carol"));

    let config = load(r#"authorized_flush_users = ["alice", "!alice"]"#).unwrap();
    assert!(config.flush_user_allowed("alice"));
    assert!(!config.flush_user_allowed("carol"), "no match: not allowed");

    let config = load("authorized_flush_users = []").unwrap();
    assert!(!config.flush_user_allowed("alice"));
}

#[test]
fn authorized_flush_users_read_files() {
    let admins = file("# flush admins\nalice, Bob\n\n  carol\n");
    let banned = file("mallory\n");
    let config = load(&format!(
        "authorized_flush_users = [\"!{}\", \"{}\"]",
        banned.path().display(),
        admins.path().display()
    ))
    .unwrap();
    for user in ["alice", "bob", "carol"] {
        assert!(config.flush_user_allowed(user), "{user}");
    }
    assert!(!config.flush_user_allowed("mallory"));
    assert!(!config.flush_user_allowed("dave"));
    let UserPattern::File { names, .. } = &config.authorized_flush_users[1].pattern else {
        panic!("not a file: {:?}", config.authorized_flush_users[1]);
    };
    assert_eq!(names.iter().collect::<Vec<_>>(), ["alice", "bob", "carol"]);
}

#[test]
fn bad_authorized_flush_users_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent");
    let text = error_text(
        &format!("authorized_flush_users = \"{}\"\n", path.display()),
        &[&path],
    );
    assert!(
        text.starts_with("FILE: key 'authorized_flush_users': cannot read the user list TABLE: "),
        "{text}"
    );

    let users = file("alice\n!bob\n");
    let text = error_text(
        &format!("authorized_flush_users = {}\n", quoted(users.path())),
        &[users.path()],
    );
    assert_eq!(
        text,
        "FILE: key 'authorized_flush_users': TABLE:2: expected user names, found \"!bob\" \
         (only names are supported in a user list file)"
    );

    let text = error_text("authorized_flush_users = \"static:nobody\"\n", &[]);
    assert_eq!(
        text,
        "FILE: key 'authorized_flush_users': expected user names, \"static:anyone\" or \
         \"/file/name\", each possibly preceded by '!', found \"static:nobody\" (a static: \
         table matches every user whatever its value; write \"static:anyone\")"
    );
    for bad in ["hash:/etc/postfix/users", "!!alice", "!"] {
        let error = load(&format!("authorized_flush_users = \"{bad}\"")).unwrap_err();
        assert_eq!(error.keys(), ["authorized_flush_users"], "{bad}: {error}");
    }
}

#[test]
fn non_default_settings_render_flush_keys() {
    let table = file("example.com OK\n");
    let users = file("alice\n");
    let config = load(&format!(
        r#"
        relay_domains = "example.com"
        fast_flush_domains = "flush.example, [192.0.2.1]"
        fast_flush_refresh_time = "1h"
        fast_flush_purge_time = "7d"
        smtpd_etrn_restrictions = "permit_mynetworks, check_etrn_access texthash:{}, reject"
        authorized_flush_users = "!bob, {}, static:anyone"
        "#,
        table.path().display(),
        users.path().display()
    ))
    .unwrap();
    let rendered: Vec<String> = config
        .non_default_settings()
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    assert_eq!(
        rendered,
        [
            format!(
                "authorized_flush_users = [\"!bob\", {}, \"static:anyone\"]",
                quoted(users.path())
            ),
            "fast_flush_domains = [\"flush.example\", \"[192.0.2.1]\"]".to_owned(),
            "fast_flush_refresh_time = \"1h\"".to_owned(),
            "relay_domains = [\"example.com\"]".to_owned(),
            format!(
                "smtpd_etrn_restrictions = [\"permit_mynetworks\", {}, \"reject\"]",
                quoted(Path::new(&format!(
                    "check_etrn_access {}",
                    table.path().display()
                )))
            ),
        ]
    );

    // What is rendered loads back to the same configuration.
    let text: String = config
        .non_default_settings()
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    assert_eq!(load(&text).unwrap(), config);
}
