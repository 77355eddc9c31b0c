//! Configuration of the towerpost SMTP relay.
//!
//! Settings are layered with [figment]: built-in defaults, then an optional
//! TOML file, then `TOWERPOST_*` environment variables (for example
//! `TOWERPOST_MESSAGE_SIZE_LIMIT=5000`; `TOWERPOST_CONFIG` names the file and
//! is not a key). Keys are Postfix parameter names with Postfix's defaults,
//! plus a few towerpost-specific ones.
//!
//! After merging, `$name`, `${name}` and `$(name)` references in string
//! values (and in each string of a list) are expanded with the effective
//! values of other keys, as in Postfix's `main.cf` (`$$` is a literal `$`).
//! Then every value is validated into the typed [`Config`].
//!
//! Nothing falls back silently: an unknown key, a value of the wrong type or
//! out of range, or a bad reference is a [`ConfigError`] naming the key,
//! where the value came from and what was expected.
//!
//! ```toml
//! myhostname = "mail.example.com"
//! mynetworks = "127.0.0.0/8, [::1]/128 192.0.2.0/24"
//! smtpd_timeout = "5m"
//! smtpd_banner = "$myhostname ESMTP"
//!
//! [[listener]]
//! name = "smtp"
//! address = "0.0.0.0:25"
//! tls = "starttls"
//! ```

mod convert;
mod env;
mod error;
mod expand;
mod keys;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use figment::value::Value;
use ipnet::IpNet;

pub use crate::error::ConfigError;

use crate::env::{ENV_NAME, EnvVars};
use crate::error::{Origin, Problem, ProblemKind};
use crate::expand::{Entry, expand_all, expand_with};
use crate::keys::{DEFAULT_BANNER, Defaults, KEYS, domain_of, suggest, system_hostname};

/// The prefix of the environment variables that set keys.
pub const ENV_PREFIX: &str = "TOWERPOST_";

/// The environment variable naming the configuration file. It is read by the
/// command line, not by [`Config::load`], and is not a key.
pub const CONFIG_ENV_VAR: &str = "TOWERPOST_CONFIG";

/// The validated settings. Field names are the configuration keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `myhostname`: the host name of this system, used in the banner and
    /// HELO. Default: the system host name.
    pub myhostname: String,
    /// `mydomain`: the domain of this system. Default: `myhostname` without
    /// its first label, or `localdomain` when it has a single label.
    pub mydomain: String,
    /// `mail_name`: the mail system name in the banner. Default `towerpost`.
    pub mail_name: String,
    /// `smtpd_banner`: the text after `220` in the greeting. Default
    /// `$myhostname ESMTP $mail_name`.
    pub smtpd_banner: String,
    /// `mynetworks`: trusted client networks. Default `127.0.0.0/8` and
    /// `[::1]/128`.
    pub mynetworks: Vec<IpNet>,
    /// `relay_domains`: domains this relay accepts mail for, lower-cased; a
    /// leading dot (`.example.com`) means subdomains. Default: none.
    pub relay_domains: Vec<String>,
    /// `queue_directory`: where the queue lives. Default `spool`, relative
    /// to the working directory.
    pub queue_directory: PathBuf,
    /// `queue_shard_count` (towerpost): number of queue shards, 1 to 256.
    /// Default 2.
    pub queue_shard_count: usize,
    /// `message_size_limit`: the maximal message size in bytes; 0 means
    /// unlimited. Default 10240000.
    pub message_size_limit: u64,
    /// `smtpd_recipient_limit`: the maximal number of recipients of one
    /// message. Default 1000.
    pub smtpd_recipient_limit: usize,
    /// `smtpd_timeout`: how long to wait for a client command or data.
    /// Default 300 s.
    pub smtpd_timeout: Duration,
    /// `smtpd_helo_required`: whether HELO/EHLO must come before MAIL.
    /// Default false.
    pub smtpd_helo_required: bool,
    /// `smtpd_hard_error_limit`: errors after which the connection is closed.
    /// Default 20.
    pub smtpd_hard_error_limit: usize,
    /// `smtpd_soft_error_limit`: errors after which each reply is delayed by
    /// `smtpd_error_sleep_time`. Default 10.
    pub smtpd_soft_error_limit: usize,
    /// `smtpd_error_sleep_time`: the delay once the soft error limit is
    /// reached. Default 1 s.
    pub smtpd_error_sleep_time: Duration,
    /// `smtpd_junk_command_limit`: NOOP/RSET/VRFY/ETRN commands allowed
    /// before they count as errors. Default 100.
    pub smtpd_junk_command_limit: usize,
    /// `smtpd_forbid_bare_newline`: what to do with a bare LF. Default
    /// [`BareNewline::Normalize`]; Postfix's `no` is refused.
    pub smtpd_forbid_bare_newline: BareNewline,
    /// `smtpd_forbid_unauth_pipelining`: whether to reject clients that send
    /// commands ahead without PIPELINING. Default true.
    pub smtpd_forbid_unauth_pipelining: bool,
    /// `smtpd_command_line_limit` (towerpost): the maximal command line
    /// length in bytes including CRLF; at least 512 (RFC 5321). Default 512.
    pub smtpd_command_line_limit: usize,
    /// `smtpd_text_line_limit` (towerpost): the maximal length of a message
    /// text line in bytes including CRLF; at least 1000 (RFC 5321). Default
    /// 1000.
    pub smtpd_text_line_limit: usize,
    /// `smtpd_shutdown_grace_time` (towerpost): how long in-flight
    /// transactions may finish after SIGTERM. Default 30 s.
    pub smtpd_shutdown_grace_time: Duration,
    /// `smtpd_tls_cert_file`: the PEM certificate chain. Default unset.
    pub smtpd_tls_cert_file: Option<PathBuf>,
    /// `smtpd_tls_key_file`: the PEM private key. Default unset.
    pub smtpd_tls_key_file: Option<PathBuf>,
    /// `listener` (`[[listener]]` tables): the sockets to listen on. Default:
    /// one listener `smtp` on `127.0.0.1:2525` without TLS. Names and
    /// addresses (except port 0) are unique; there is at least one.
    pub listener: Vec<Listener>,
}

/// One `[[listener]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// A unique name, used in logs and errors.
    pub name: String,
    /// The address to bind, such as `127.0.0.1:2525` or `[::1]:25`.
    pub address: SocketAddr,
    /// How TLS is used on this listener.
    pub tls: TlsMode,
}

/// How a listener uses TLS (`tls = "none" | "starttls" | "implicit"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TlsMode {
    /// Plain text only.
    #[default]
    None,
    /// Plain text, upgraded by the STARTTLS command.
    StartTls,
    /// TLS from the first byte (submissions, port 465).
    Implicit,
}

impl TlsMode {
    /// The configuration spelling: `none`, `starttls` or `implicit`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::StartTls => "starttls",
            TlsMode::Implicit => "implicit",
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with a bare newline (LF not preceded by CR) from a client
/// (`smtpd_forbid_bare_newline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BareNewline {
    /// `normalize` (Postfix `yes`): reject commands ending in a bare LF and
    /// turn a bare LF in message text into CRLF, never treating it as the
    /// end of a line that could end DATA.
    #[default]
    Normalize,
    /// `reject`: reject commands and messages containing a bare LF.
    Reject,
}

impl BareNewline {
    /// The configuration spelling: `normalize` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            BareNewline::Normalize => "normalize",
            BareNewline::Reject => "reject",
        }
    }
}

impl fmt::Display for BareNewline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for Config {
    /// The built-in defaults, with the system host name.
    fn default() -> Self {
        Config::builtin(system_hostname())
    }
}

impl Config {
    /// Load defaults, then the file (if given), then the environment
    /// (`TOWERPOST_*` variables of the process); expand references; validate.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let vars = std::env::vars_os().filter_map(|(name, value)| {
            Some((
                name.into_string().ok()?,
                value.to_string_lossy().into_owned(),
            ))
        });
        load(file, EnvVars::new(vars))
    }

    /// Same as [`Config::load`] but with an explicit environment (list of
    /// (name, value)) instead of the process environment — for tests.
    pub fn load_with_env(file: Option<&Path>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        load(file, EnvVars::new(env.iter().copied()))
    }

    /// Effective settings that differ from the built-in defaults, as (key,
    /// value-rendered-as-TOML) pairs sorted by key (like `postconf -n`).
    ///
    /// Defaults that derive from other keys are taken with this
    /// configuration's values: with `myhostname = "mx.example.com"`,
    /// `mydomain = "example.com"` and the default banner are not listed.
    pub fn non_default_settings(&self) -> Vec<(String, String)> {
        let mut defaults = Config::builtin(system_hostname());
        defaults.mydomain = domain_of(&self.myhostname);
        defaults.smtpd_banner =
            expand_with(DEFAULT_BANNER, |k| self.setting(k)?.plain()).unwrap_or_default();
        let defaults: BTreeMap<&str, String> = defaults
            .settings()
            .into_iter()
            .map(|(k, v)| (k, v.toml()))
            .collect();
        let mut out: Vec<(String, String)> = self
            .settings()
            .into_iter()
            .map(|(k, v)| (k, v.toml()))
            .filter(|(k, v)| defaults.get(k) != Some(v))
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        out.sort();
        out
    }

    /// The built-in defaults for a given host name.
    fn builtin(myhostname: String) -> Config {
        use crate::keys::*;
        let mut config = Config {
            mydomain: domain_of(&myhostname),
            myhostname,
            mail_name: DEFAULT_MAIL_NAME.to_owned(),
            smtpd_banner: String::new(),
            mynetworks: Vec::new(),
            relay_domains: Vec::new(),
            queue_directory: PathBuf::from(DEFAULT_QUEUE_DIRECTORY),
            queue_shard_count: DEFAULT_QUEUE_SHARD_COUNT,
            message_size_limit: DEFAULT_MESSAGE_SIZE_LIMIT,
            smtpd_recipient_limit: DEFAULT_RECIPIENT_LIMIT,
            smtpd_timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            smtpd_helo_required: false,
            smtpd_hard_error_limit: DEFAULT_HARD_ERROR_LIMIT,
            smtpd_soft_error_limit: DEFAULT_SOFT_ERROR_LIMIT,
            smtpd_error_sleep_time: Duration::from_secs(DEFAULT_ERROR_SLEEP_SECS),
            smtpd_junk_command_limit: DEFAULT_JUNK_COMMAND_LIMIT,
            smtpd_forbid_bare_newline: BareNewline::Normalize,
            smtpd_forbid_unauth_pipelining: true,
            smtpd_command_line_limit: MIN_COMMAND_LINE_LIMIT,
            smtpd_text_line_limit: MIN_TEXT_LINE_LIMIT,
            smtpd_shutdown_grace_time: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECS),
            smtpd_tls_cert_file: None,
            smtpd_tls_key_file: None,
            listener: vec![Listener {
                name: DEFAULT_LISTENER.0.to_owned(),
                address: SocketAddr::from(([127, 0, 0, 1], 2525)),
                tls: TlsMode::None,
            }],
        };
        config.mynetworks = DEFAULT_MYNETWORKS
            .iter()
            .filter_map(|n| convert::networks(&Value::from(*n)).ok())
            .flatten()
            .collect();
        config.smtpd_banner =
            expand_with(DEFAULT_BANNER, |k| config.setting(k)?.plain()).unwrap_or_default();
        config
    }

    fn setting(&self, key: &str) -> Option<Setting<'_>> {
        self.settings()
            .into_iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    /// Every setting by key, in key order.
    fn settings(&self) -> Vec<(&'static str, Setting<'_>)> {
        // Destructured so that a new field cannot be forgotten here.
        let Config {
            myhostname,
            mydomain,
            mail_name,
            smtpd_banner,
            mynetworks,
            relay_domains,
            queue_directory,
            queue_shard_count,
            message_size_limit,
            smtpd_recipient_limit,
            smtpd_timeout,
            smtpd_helo_required,
            smtpd_hard_error_limit,
            smtpd_soft_error_limit,
            smtpd_error_sleep_time,
            smtpd_junk_command_limit,
            smtpd_forbid_bare_newline,
            smtpd_forbid_unauth_pipelining,
            smtpd_command_line_limit,
            smtpd_text_line_limit,
            smtpd_shutdown_grace_time,
            smtpd_tls_cert_file,
            smtpd_tls_key_file,
            listener,
        } = self;
        let count = |n: &usize| Setting::Int(*n as u64);
        let mut settings = vec![
            ("myhostname", Setting::Text(myhostname)),
            ("mydomain", Setting::Text(mydomain)),
            ("mail_name", Setting::Text(mail_name)),
            ("smtpd_banner", Setting::Text(smtpd_banner)),
            (
                "mynetworks",
                Setting::List(mynetworks.iter().map(postfix_network).collect()),
            ),
            ("relay_domains", Setting::List(relay_domains.clone())),
            ("queue_directory", Setting::Path(Some(queue_directory))),
            ("queue_shard_count", count(queue_shard_count)),
            ("message_size_limit", Setting::Int(*message_size_limit)),
            ("smtpd_recipient_limit", count(smtpd_recipient_limit)),
            ("smtpd_timeout", Setting::Duration(*smtpd_timeout)),
            ("smtpd_helo_required", Setting::Bool(*smtpd_helo_required)),
            ("smtpd_hard_error_limit", count(smtpd_hard_error_limit)),
            ("smtpd_soft_error_limit", count(smtpd_soft_error_limit)),
            (
                "smtpd_error_sleep_time",
                Setting::Duration(*smtpd_error_sleep_time),
            ),
            ("smtpd_junk_command_limit", count(smtpd_junk_command_limit)),
            (
                "smtpd_forbid_bare_newline",
                Setting::Word(smtpd_forbid_bare_newline.as_str()),
            ),
            (
                "smtpd_forbid_unauth_pipelining",
                Setting::Bool(*smtpd_forbid_unauth_pipelining),
            ),
            ("smtpd_command_line_limit", count(smtpd_command_line_limit)),
            ("smtpd_text_line_limit", count(smtpd_text_line_limit)),
            (
                "smtpd_shutdown_grace_time",
                Setting::Duration(*smtpd_shutdown_grace_time),
            ),
            (
                "smtpd_tls_cert_file",
                Setting::Path(smtpd_tls_cert_file.as_deref()),
            ),
            (
                "smtpd_tls_key_file",
                Setting::Path(smtpd_tls_key_file.as_deref()),
            ),
            ("listener", Setting::Listeners(listener)),
        ];
        settings.sort_by_key(|(k, _)| *k);
        settings
    }
}

/// Postfix's spelling of a network: IPv6 in brackets.
fn postfix_network(net: &IpNet) -> String {
    match net {
        IpNet::V4(net) => net.to_string(),
        IpNet::V6(net) => format!("[{}]/{}", net.addr(), net.prefix_len()),
    }
}

/// A typed setting, for rendering.
enum Setting<'a> {
    Text(&'a str),
    List(Vec<String>),
    Int(u64),
    Bool(bool),
    Duration(Duration),
    Path(Option<&'a Path>),
    Word(&'static str),
    Listeners(&'a [Listener]),
}

impl Setting<'_> {
    /// The value as TOML.
    fn toml(&self) -> String {
        match self {
            Setting::Text(s) => toml_string(s),
            Setting::List(items) => {
                let items: Vec<String> = items.iter().map(|i| toml_string(i)).collect();
                format!("[{}]", items.join(", "))
            }
            Setting::Int(n) => n.to_string(),
            Setting::Bool(b) => b.to_string(),
            Setting::Duration(d) => toml_string(&humantime::format_duration(*d).to_string()),
            Setting::Path(p) => {
                toml_string(&p.map(|p| p.display().to_string()).unwrap_or_default())
            }
            Setting::Word(w) => toml_string(w),
            Setting::Listeners(listeners) => {
                let tables: Vec<String> = listeners
                    .iter()
                    .map(|l| {
                        format!(
                            "{{ name = {}, address = {}, tls = {} }}",
                            toml_string(&l.name),
                            toml_string(&l.address.to_string()),
                            toml_string(l.tls.as_str())
                        )
                    })
                    .collect();
                format!("[{}]", tables.join(", "))
            }
        }
    }

    /// The value as text inside another value (`$name`); `None` for tables.
    fn plain(&self) -> Option<String> {
        Some(match self {
            Setting::Text(s) => (*s).to_owned(),
            Setting::List(items) => items.join(", "),
            Setting::Int(n) => n.to_string(),
            Setting::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
            Setting::Duration(d) => humantime::format_duration(*d).to_string(),
            Setting::Path(p) => p.map(|p| p.display().to_string()).unwrap_or_default(),
            Setting::Word(w) => (*w).to_owned(),
            Setting::Listeners(_) => return None,
        })
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The whole pipeline: merge, check keys, expand, validate.
fn load(file: Option<&Path>, env: EnvVars) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Defaults);
    if let Some(path) = file {
        if let Err(e) = std::fs::read_to_string(path) {
            return Err(ConfigError::new(vec![Problem {
                kind: ProblemKind::File,
                origin: Origin::File(path.to_owned()),
                key: None,
                message: format!("cannot read the configuration file: {e}"),
                key_in_message: false,
            }]));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(env.clone());

    let origin_for = |metadata: Option<&figment::Metadata>, key: &str| match metadata {
        Some(md) if md.source.as_ref().and_then(|s| s.file_path()).is_some() => {
            Origin::File(file.map_or_else(PathBuf::new, Path::to_owned))
        }
        Some(md) if md.name == ENV_NAME => Origin::Env(env.var_name(key).map_or_else(
            || format!("{ENV_PREFIX}{}", key.to_ascii_uppercase()),
            str::to_owned,
        )),
        _ => Origin::Default,
    };

    let merged = match figment.find_value("") {
        Ok(Value::Dict(_, dict)) => dict,
        Ok(_) => BTreeMap::new(),
        Err(error) => {
            let problems = error
                .into_iter()
                .map(|e| {
                    let key = e.path.join(".");
                    let origin = origin_for(e.metadata.as_ref(), &key);
                    Problem {
                        kind: ProblemKind::File,
                        origin,
                        key: (!key.is_empty()).then_some(key),
                        message: e.kind.to_string(),
                        key_in_message: false,
                    }
                })
                .collect();
            return Err(ConfigError::new(problems));
        }
    };

    let mut problems = Vec::new();
    let mut entries = BTreeMap::new();
    for (key, value) in merged {
        let origin = origin_for(figment.get_metadata(value.tag()), &key);
        if KEYS.contains(&key.as_str()) {
            entries.insert(
                key,
                Entry {
                    value,
                    origin,
                    derived: false,
                },
            );
        } else {
            let hint = suggest(&key, KEYS)
                .map(|s| match origin {
                    Origin::Env(_) => {
                        format!(" (did you mean {ENV_PREFIX}{}?)", s.to_ascii_uppercase())
                    }
                    _ => format!(" (did you mean '{s}'?)"),
                })
                .unwrap_or_default();
            problems.push(Problem {
                kind: ProblemKind::UnknownKey,
                message: format!("unknown key '{key}'{hint}"),
                key_in_message: false,
                origin,
                key: Some(key),
            });
        }
    }
    entries.entry("mydomain".to_owned()).or_insert(Entry {
        value: Value::from(""),
        origin: Origin::Default,
        derived: true,
    });

    problems.extend(expand_all(&mut entries));
    let config = validate(&entries, &mut problems);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::new(problems))
    }
}

/// Converts the expanded entries into a `Config`, pushing a problem for
/// each invalid value. Entries missing from `entries` have already been
/// reported.
fn validate(entries: &BTreeMap<String, Entry>, problems: &mut Vec<Problem>) -> Config {
    use crate::keys::{MIN_COMMAND_LINE_LIMIT, MIN_TEXT_LINE_LIMIT};

    let mut config = Config::builtin("localhost".to_owned());
    let mut failed: BTreeSet<&str> = KEYS
        .iter()
        .copied()
        .filter(|k| !entries.contains_key(*k))
        .collect();

    macro_rules! field {
        ($field:ident, $convert:expr) => {{
            let key = stringify!($field);
            if let Some(entry) = entries.get(key) {
                match $convert(&entry.value) {
                    Ok(value) => config.$field = value,
                    Err(message) => {
                        failed.insert(key);
                        problems.push(Problem::value(&entry.origin, key, message));
                    }
                }
            }
        }};
    }

    let any = usize::MAX;
    field!(myhostname, convert::host_name);
    field!(mydomain, convert::host_name);
    field!(mail_name, convert::text);
    field!(smtpd_banner, convert::text);
    field!(mynetworks, convert::networks);
    field!(relay_domains, convert::domains);
    field!(queue_directory, convert::path);
    field!(queue_shard_count, |v| convert::count(v, 1, 256));
    field!(message_size_limit, |v| convert::integer(v, 0, u64::MAX));
    field!(smtpd_recipient_limit, |v| convert::count(v, 1, any));
    field!(smtpd_timeout, convert::positive_duration);
    field!(smtpd_helo_required, convert::boolean);
    field!(smtpd_hard_error_limit, |v| convert::count(v, 1, any));
    field!(smtpd_soft_error_limit, |v| convert::count(v, 0, any));
    field!(smtpd_error_sleep_time, convert::duration);
    field!(smtpd_junk_command_limit, |v| convert::count(v, 1, any));
    field!(smtpd_forbid_bare_newline, convert::bare_newline);
    field!(smtpd_forbid_unauth_pipelining, convert::boolean);
    field!(smtpd_command_line_limit, |v| convert::count(
        v,
        MIN_COMMAND_LINE_LIMIT,
        any
    ));
    field!(smtpd_text_line_limit, |v| convert::count(
        v,
        MIN_TEXT_LINE_LIMIT,
        any
    ));
    field!(smtpd_shutdown_grace_time, convert::duration);
    field!(smtpd_tls_cert_file, convert::optional_path);
    field!(smtpd_tls_key_file, convert::optional_path);
    if let Some(entry) = entries.get("listener") {
        match convert::listeners(&entry.value, &entry.origin, problems) {
            Some(listeners) => config.listener = listeners,
            None => {
                failed.insert("listener");
            }
        }
    }

    // The certificate and the key go together.
    let tls_keys = ["smtpd_tls_cert_file", "smtpd_tls_key_file"];
    if tls_keys.iter().all(|k| !failed.contains(k)) {
        let cert = config.smtpd_tls_cert_file.is_some();
        let key = config.smtpd_tls_key_file.is_some();
        if cert != key {
            let (set, unset) = if cert {
                (tls_keys[0], tls_keys[1])
            } else {
                (tls_keys[1], tls_keys[0])
            };
            problems.push(Problem::value(
                &entries[set].origin,
                set,
                format!("set without {unset}; set both or neither"),
            ));
        } else if !failed.contains("listener") && !cert {
            let origin = &entries["listener"].origin;
            for listener in config.listener.iter().filter(|l| l.tls != TlsMode::None) {
                problems.push(Problem::listener(
                    origin,
                    format!(
                        "listener '{}': tls = \"{}\" requires smtpd_tls_cert_file and \
                         smtpd_tls_key_file, which are not set",
                        listener.name, listener.tls
                    ),
                ));
            }
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_cover_every_key() {
        let config = Config::default();
        let keys: Vec<&str> = config.settings().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, KEYS);
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(toml_string("\u{1}"), r#""\u0001""#);
    }

    #[test]
    fn default_equals_loading_nothing() {
        assert_eq!(Config::load_with_env(None, &[]).unwrap(), Config::default());
    }

    #[test]
    fn default_banner_uses_hostname_and_mail_name() {
        let config = Config::builtin("mx.example.com".to_owned());
        assert_eq!(config.smtpd_banner, "mx.example.com ESMTP towerpost");
        assert_eq!(config.mydomain, "example.com");
    }
}
