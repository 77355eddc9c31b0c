//! The configuration loader, given any file or `TOWERPOST_*` variables:
//! no panic, no unbounded read, and either a configuration whose settings
//! can all be shown (`config show`) or an error that says where it is.
//!
//! The first byte picks the source: even, the rest is the file; odd, its
//! lines are `key=value` environment variables.

use std::path::PathBuf;

use towerpost_config::Config;

/// What configuration files are made of.
pub const TOKENS: &[&[u8]] = &[
    b"\n",
    b" = ",
    b"\"",
    b"'''",
    b"[[listener]]\nname = \"smtp\"\naddress = \"127.0.0.1:25\"\n",
    b"[cluster]\n",
    b"myhostname = \"mx.example.test\"\n",
    b"mynetworks = [\"127.0.0.0/8\", \"[::1]/128\"]\n",
    b"relay_domains = \"$mydestination\"\n",
    b"smtpd_banner = \"$myhostname ESMTP ${stress?x}\"\n",
    b"smtpd_relay_restrictions = \"permit_mynetworks, reject\"\n",
    b"message_size_limit = 18446744073709551616\n",
    b"smtpd_timeout = \"300s\"\n",
    b"queue_shard_count = 0\n",
    b"defer_transports = [\"smtp\"]\n",
    b"smtpd_client_message_rate_limit = \"1/0s\"\n",
    b"fast_flush_domains = \"/dev/zero\"\n",
    b"check_client_access:/dev/zero",
    b"$",
    b"${",
    b"}",
    b"\\u0000",
    b"1e999",
    b"-1",
];

/// Panics when an invariant does not hold for `data`.
pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let loaded = if mode % 2 == 0 {
        let path = scratch_file();
        std::fs::write(&path, text.as_bytes()).expect("write the scratch configuration");
        let loaded = Config::load_with_env(Some(&path), &[]);
        let _ = std::fs::remove_file(&path);
        loaded
    } else {
        let vars: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                (
                    format!("TOWERPOST_{}", k.to_ascii_uppercase()),
                    v.to_owned(),
                )
            })
            .collect();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Config::load_with_env(None, &vars)
    };
    match loaded {
        Ok(config) => {
            for (key, value) in config.all_settings() {
                assert!(!key.is_empty() && !value.is_empty(), "{key} = {value:?}");
            }
        }
        Err(e) => assert!(
            !e.to_string().trim().is_empty(),
            "an error that says nothing"
        ),
    }
}

/// One file per process (fuzzers and test threads run checks in turn per
/// process, and tests of different targets do not share it).
fn scratch_file() -> PathBuf {
    std::env::temp_dir().join(format!(
        "towerpost-fuzz-config-{}-{:?}.toml",
        std::process::id(),
        std::thread::current().id()
    ))
}
