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
//! relayhost = "[smarthost.example.com]:submission"
//!
//! [[listener]]
//! name = "smtp"
//! address = "0.0.0.0:25"
//! tls = "starttls"
//!
//! [transport.etrn-only]
//! type = "smtp"
//! destination_concurrency_limit = 5
//!
//! [transport_maps]
//! "customer.example" = "etrn-only:[mail.customer.example]"
//! "*" = "smtp:[fallback.example.com]"
//! ```
//!
//! The `[transport.NAME]` and `[transport_maps]` tables can only be set in
//! the file, and references are not expanded inside them (nor inside
//! `[[listener]]` tables). [`Config::route`] resolves a recipient domain to
//! a transport and next hop as Postfix's trivial-rewrite does.
//!
//! The files named by `smtpd_etrn_restrictions` (access tables, see
//! [`AccessTable`]) and `authorized_flush_users` are read by
//! [`Config::load`]: a file that cannot be read, or a bad line in it, is a
//! [`ConfigError`] naming the key, the file and the line.
//!
//! Why it is long: loading (layers, expansion) and validation across keys
//! (the checks one key's table entry cannot make alone) are one pass; the
//! keys themselves are in `table.rs`, their value types in `values.rs`.

mod access;
mod address_map;
mod convert;
mod env;
mod error;
mod expand;
mod flush;
mod key_macro;
mod keys;
mod read;
mod restrictions;
mod sasl;
mod show;
mod table;
mod tls_policy;
mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};
use figment::value::Value;

pub use crate::access::{AccessAction, AccessTable};
pub use crate::address_map::AddressMap;
pub use crate::error::ConfigError;
pub use crate::flush::{UserPattern, UserRule};
pub use crate::read::{MAX_FILE_BYTES, check_file, read_text};
pub use crate::restrictions::Restriction;
pub use crate::sasl::{Login, PasswordMap, SaslSecurityOption, SmtpdTlsLevel};
pub use crate::tls_policy::{TlsMatch, TlsPolicy, TlsPolicyMap};
pub use crate::values::{
    BareNewline, Listener, ListenerOverrides, LogFormat, RateLimit, SmtpTlsLevel, SmtpdPolicy,
    TlsMode, TransportConfig, TransportKind, TransportMapEntry, UpstreamProxyProtocol,
};
/// Next hops and routes are shared with the queue and the SMTP client.
pub use towerpost_protocol::{Nexthop, Route};

use crate::env::{ENV_NAME, EnvVars};
use crate::error::{Origin, Problem, ProblemKind};
use crate::expand::{Entry, expand_all, expand_with};
use crate::keys::{BUILTIN_TRANSPORTS, DEFAULT_BANNER, Defaults, domain_of, keys, suggest};
use crate::show::{Setting, inline_table, toml_string};
pub use crate::table::Config;
pub(crate) use crate::table::{TABLE, default_values};

/// The prefix of the environment variables that set keys.
pub const ENV_PREFIX: &str = "TOWERPOST_";

/// The environment variable naming the configuration file. It is read by the
/// command line, not by [`Config::load`], and is not a key.
pub const CONFIG_ENV_VAR: &str = "TOWERPOST_CONFIG";

/// `"N/unit"`, or `0` for none, as `config show` writes it.
fn rate_text(rate: Option<&RateLimit>) -> String {
    rate.map_or_else(|| "0".to_owned(), RateLimit::to_string)
}

impl Default for Config {
    /// The built-in defaults, with the system host name.
    fn default() -> Self {
        load(None, EnvVars::default()).expect("the built-in defaults are valid")
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
        let defaults = Config {
            mydomain: domain_of(&self.myhostname),
            smtpd_banner: expand_with(DEFAULT_BANNER, |k| self.setting(k)?.plain())
                .unwrap_or_default(),
            fast_flush_domains: flush::flush_domains(&Value::from(self.relay_domains.join(", ")))
                .unwrap_or_default(),
            smtpd_client_event_limit_exceptions: self.mynetworks.clone(),
            ..Config::default()
        };
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

    /// Every effective setting, as (key, value-rendered-as-TOML) pairs
    /// sorted by key (like `postconf`).
    pub fn all_settings(&self) -> Vec<(String, String)> {
        self.settings()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.toml()))
            .collect()
    }

    /// The built-in defaults, rendered as [`Config::all_settings`] does
    /// (like `postconf -d`).
    pub fn default_settings() -> Vec<(String, String)> {
        Config::default().all_settings()
    }

    /// One effective setting rendered as TOML (like `postconf KEY`);
    /// `None` for an unknown key.
    pub fn setting_toml(&self, key: &str) -> Option<String> {
        self.setting(key).map(|s| s.toml())
    }

    /// The names of every top-level key, sorted.
    pub fn key_names() -> &'static [&'static str] {
        keys()
    }

    /// The known key closest to an unknown `key`, if it looks like a typo.
    pub fn suggest_key(key: &str) -> Option<&'static str> {
        suggest(key, keys())
    }

    /// The key reference as a Markdown table (docs/config-reference.md):
    /// every key with its default and its documentation, from the key
    /// table.
    pub fn reference_markdown() -> String {
        let defaults = Config::default();
        let raw: BTreeMap<&str, Value> = default_values().into_iter().collect();
        let mut rows: Vec<(&str, String, String)> = TABLE
            .iter()
            .map(|k| {
                let default = match (k.shown, raw.get(k.key)) {
                    (Some(shown), _) => shown.to_owned(),
                    // A default that refers to other keys is shown as written.
                    (None, Some(Value::String(_, text))) if text.contains('$') => {
                        format!("`{text}`")
                    }
                    _ => defaults
                        .setting_toml(k.key)
                        .map(|t| format!("`{t}`"))
                        .unwrap_or_default(),
                };
                let doc = k.doc.split_whitespace().collect::<Vec<_>>().join(" ");
                (k.key, default, doc)
            })
            .collect();
        rows.sort();
        let mut out = String::from(
            "# Configuration keys\n\n\
             Generated from `config/src/table.rs` by `towerpost config reference`; \
             do not edit by hand (the config tests fail when it is out of date).\n\n\
             | key | default | meaning |\n|---|---|---|\n",
        );
        for (key, default, doc) in rows {
            let cell = |s: &str| s.replace('|', "\\|");
            out.push_str(&format!(
                "| `{key}` | {} | {} |\n",
                cell(&default),
                cell(&doc)
            ));
        }
        out
    }

    /// The effective smtpd settings of `listener`: its overrides, else the
    /// top-level values. `smtpd_tls_security_level = encrypt` implies
    /// `smtpd_tls_auth_only`; an implicit-TLS listener is always
    /// encrypted.
    pub fn smtpd_policy(&self, listener: &Listener) -> SmtpdPolicy {
        let o = &listener.overrides;
        let pick = |own: &Option<Vec<Restriction>>, top: &Vec<Restriction>| {
            own.clone().unwrap_or_else(|| top.clone())
        };
        let tls_security_level = o
            .smtpd_tls_security_level
            .unwrap_or(self.smtpd_tls_security_level);
        SmtpdPolicy {
            sasl_auth_enable: o
                .smtpd_sasl_auth_enable
                .unwrap_or(self.smtpd_sasl_auth_enable),
            tls_auth_only: o.smtpd_tls_auth_only.unwrap_or(self.smtpd_tls_auth_only)
                || tls_security_level == SmtpdTlsLevel::Encrypt,
            tls_security_level,
            client_restrictions: pick(
                &o.smtpd_client_restrictions,
                &self.smtpd_client_restrictions,
            ),
            helo_restrictions: pick(&o.smtpd_helo_restrictions, &self.smtpd_helo_restrictions),
            sender_restrictions: pick(
                &o.smtpd_sender_restrictions,
                &self.smtpd_sender_restrictions,
            ),
            relay_restrictions: pick(&o.smtpd_relay_restrictions, &self.smtpd_relay_restrictions),
            recipient_restrictions: pick(
                &o.smtpd_recipient_restrictions,
                &self.smtpd_recipient_restrictions,
            ),
            upstream_proxy_protocol: o
                .smtpd_upstream_proxy_protocol
                .unwrap_or(self.smtpd_upstream_proxy_protocol),
        }
    }

    /// Postfix-style resolution of a recipient domain: `transport_maps`
    /// (exact domain, then `.parent` entries from the closest parent up, then
    /// `*`), then `relayhost` for the default transport, then
    /// `default_transport` with the recipient domain (MX lookup) as next hop.
    ///
    /// The domain is matched case-insensitively, ignoring a trailing dot. As
    /// in transport(5), an entry with a transport but no next hop delivers to
    /// the recipient domain (MX lookup, not `relayhost`); an entry with a
    /// next hop but no transport uses `default_transport`; an entry with
    /// neither (`":"`) stops the search and changes nothing, so `relayhost`
    /// applies as if no entry had matched.
    pub fn route(&self, domain: &str) -> Route {
        let domain = domain.strip_suffix('.').unwrap_or(domain).to_lowercase();
        let maps = &self.transport_maps;
        let entry = maps
            .get(&domain)
            .or_else(|| {
                domain
                    .match_indices('.')
                    .find_map(|(i, _)| maps.get(&domain[i..]))
            })
            .or_else(|| maps.get("*"));
        let (transport, nexthop) = match entry {
            Some(TransportMapEntry {
                transport: None,
                nexthop: None,
            })
            | None => (None, self.relayhost.clone()),
            Some(route) => (route.transport.clone(), route.nexthop.clone()),
        };
        Route {
            transport: transport.unwrap_or_else(|| self.default_transport.clone()),
            nexthop: nexthop.unwrap_or_else(|| Nexthop::domain(domain)),
        }
    }

    /// A transport of type `kind` with this configuration's defaults.
    fn default_transport_config(&self, kind: TransportKind) -> TransportConfig {
        TransportConfig {
            kind,
            destination_concurrency_limit: self.default_destination_concurrency_limit,
            destination_recipient_limit: self.default_destination_recipient_limit,
            tls_security_level: self.smtp_tls_security_level,
            destination_rate_delay: self.default_destination_rate_delay,
            destination_rate_limit: self.default_destination_rate_limit,
        }
    }

    /// The built-in transports with this configuration's defaults.
    fn builtin_transports(&self) -> BTreeMap<String, TransportConfig> {
        BUILTIN_TRANSPORTS
            .iter()
            .filter_map(|(name, kind)| {
                let kind = convert::transport_kind(&Value::from(*kind)).ok()?;
                Some(((*name).to_owned(), self.default_transport_config(kind)))
            })
            .collect()
    }

    /// The transports that differ from the built-in ones, as an inline TOML
    /// table; only the keys that differ from this configuration's defaults
    /// are given.
    fn render_transports(&self, transports: &BTreeMap<String, TransportConfig>) -> String {
        let builtin = self.builtin_transports();
        inline_table(
            transports
                .iter()
                .filter(|(name, transport)| builtin.get(*name) != Some(*transport))
                .map(|(name, transport)| {
                    let defaults = self.default_transport_config(transport.kind);
                    let mut fields = vec![("type", toml_string(transport.kind.as_str()))];
                    if transport.destination_concurrency_limit
                        != defaults.destination_concurrency_limit
                    {
                        fields.push((
                            "destination_concurrency_limit",
                            transport.destination_concurrency_limit.to_string(),
                        ));
                    }
                    if transport.destination_recipient_limit != defaults.destination_recipient_limit
                    {
                        fields.push((
                            "destination_recipient_limit",
                            transport.destination_recipient_limit.to_string(),
                        ));
                    }
                    if transport.tls_security_level != defaults.tls_security_level {
                        fields.push((
                            "tls_security_level",
                            toml_string(transport.tls_security_level.as_str()),
                        ));
                    }
                    if transport.destination_rate_delay != defaults.destination_rate_delay {
                        fields.push((
                            "destination_rate_delay",
                            toml_string(
                                &humantime::format_duration(transport.destination_rate_delay)
                                    .to_string(),
                            ),
                        ));
                    }
                    if transport.destination_rate_limit != defaults.destination_rate_limit {
                        fields.push((
                            "destination_rate_limit",
                            toml_string(&rate_text(transport.destination_rate_limit.as_ref())),
                        ));
                    }
                    (name.as_str(), inline_table(fields))
                }),
        )
    }

    fn setting(&self, key: &str) -> Option<Setting<'_>> {
        self.settings()
            .into_iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }
}

/// The whole pipeline: merge, check keys, expand, validate.
fn load(file: Option<&Path>, env: EnvVars) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Defaults);
    if let Some(path) = file {
        if let Err(e) = read::check_file(path).and_then(|()| std::fs::File::open(path)) {
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
        if keys().contains(&key.as_str()) {
            entries.insert(
                key,
                Entry {
                    value,
                    origin,
                    derived: false,
                },
            );
        } else {
            let hint = suggest(&key, keys())
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
    let mut failed: BTreeSet<&'static str> = keys()
        .iter()
        .copied()
        .filter(|k| !entries.contains_key(*k))
        .collect();
    let mut config = Config::from_entries(entries, problems, &mut failed);

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

    // The default `$relay_domains` is not checked again when relay_domains
    // is invalid; that is reported already.
    let flush_default = entries
        .get("fast_flush_domains")
        .is_some_and(|e| e.origin == Origin::Default);
    if flush_default && failed.contains("relay_domains") {
        failed.insert("fast_flush_domains");
    } else {
        field!(fast_flush_domains, flush::flush_domains);
    }
    if let Some(entry) = entries
        .get("smtp_tls_policy_maps")
        .filter(|e| file_only(e, "smtp_tls_policy_maps", problems))
    {
        match tls_policy::tls_policy_maps(&entry.value, &entry.origin, problems) {
            Some(maps) => config.smtp_tls_policy_maps = maps,
            None => {
                failed.insert("smtp_tls_policy_maps");
            }
        }
    }
    // The default `$mynetworks` is not checked again when mynetworks is
    // invalid; that is reported already.
    let exceptions_default = entries
        .get("smtpd_client_event_limit_exceptions")
        .is_some_and(|e| e.origin == Origin::Default);
    if exceptions_default && failed.contains("mynetworks") {
        failed.insert("smtpd_client_event_limit_exceptions");
    } else {
        field!(smtpd_client_event_limit_exceptions, convert::networks);
    }

    // Transports first: the other keys name them. Their defaults come from
    // the keys above (built-in defaults where those failed; that failure is
    // reported already).
    let mut declared: Option<BTreeSet<String>> = None;
    if let Some(entry) = entries
        .get("transport")
        .filter(|e| file_only(e, "transport", problems))
    {
        let before = problems.len();
        if let Some(transports) = convert::transports(
            &entry.value,
            &entry.origin,
            |kind| config.default_transport_config(kind),
            problems,
        ) {
            declared = Some(transports.declared);
            config.transport = transports.valid;
        }
        if problems.len() != before {
            failed.insert("transport");
        }
    } else {
        failed.insert("transport");
    }
    field!(default_transport, |v| convert::transport_name(
        v,
        declared.as_ref()
    ));
    field!(defer_transports, |v| convert::transport_names(
        v,
        declared.as_ref()
    ));
    if let Some(entry) = entries
        .get("transport_maps")
        .filter(|e| file_only(e, "transport_maps", problems))
    {
        match convert::transport_maps(
            &entry.value,
            &entry.origin,
            declared.as_ref(),
            &config.transport,
            problems,
        ) {
            Some(maps) => config.transport_maps = maps,
            None => {
                failed.insert("transport_maps");
            }
        }
    }

    // The backoff times are a range.
    let backoff = ["minimal_backoff_time", "maximal_backoff_time"];
    if backoff.iter().all(|k| !failed.contains(k))
        && config.minimal_backoff_time > config.maximal_backoff_time
    {
        let min = humantime::format_duration(config.minimal_backoff_time);
        let max = humantime::format_duration(config.maximal_backoff_time);
        let (key, message) = if entries[backoff[0]].origin == Origin::Default {
            (
                backoff[1],
                format!("{max} is less than minimal_backoff_time ({min})"),
            )
        } else {
            (
                backoff[0],
                format!("{min} is greater than maximal_backoff_time ({max})"),
            )
        };
        problems.push(Problem::value(&entries[key].origin, key, message));
    }

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
        } else if !failed.contains("listener") && !cert && config.smtpd_tls_chain_files.is_empty() {
            let origin = &entries["listener"].origin;
            for listener in config.listener.iter().filter(|l| l.tls != TlsMode::None) {
                problems.push(Problem::listener(
                    origin,
                    format!(
                        "listener '{}': tls = \"{}\" requires smtpd_tls_chain_files, or \
                         smtpd_tls_cert_file and smtpd_tls_key_file, which are not set",
                        listener.name, listener.tls
                    ),
                ));
            }
        }
    }
    check_smtpd_policies(&config, entries, &failed, problems);
    if config.smtp_sasl_auth_enable
        && config.smtp_sasl_password_maps.is_none()
        && !failed.contains("smtp_sasl_password_maps")
    {
        problems.push(Problem::value(
            &entries["smtp_sasl_auth_enable"].origin,
            "smtp_sasl_auth_enable",
            "set without smtp_sasl_password_maps: the client has no login to present",
        ));
    }
    config
}

/// `relay_recipient_maps` and `smtpd_sender_login_maps`: a file, or empty.
pub(crate) fn address_map_value(value: &Value) -> Result<Option<AddressMap>, Vec<String>> {
    let path = convert::optional_path(value).map_err(|m| vec![m])?;
    let Some(path) = path else {
        return Ok(None);
    };
    let path =
        restrictions::table_path("table", &path.display().to_string()).map_err(|m| vec![m])?;
    AddressMap::load_problems(path).map(Some)
}

/// Checks each listener's effective policy: Postfix's open-relay rule,
/// AUTH needs a password file, mandatory TLS needs TLS.
fn check_smtpd_policies(
    config: &Config,
    entries: &BTreeMap<String, Entry>,
    failed: &BTreeSet<&str>,
    problems: &mut Vec<Problem>,
) {
    let lists = ["smtpd_relay_restrictions", "smtpd_recipient_restrictions"];
    if lists.iter().any(|k| failed.contains(k)) || failed.contains("listener") {
        return;
    }
    let listener_origin = &entries["listener"].origin;
    for listener in &config.listener {
        let policy = config.smtpd_policy(listener);
        let o = &listener.overrides;
        let overridden =
            o.smtpd_relay_restrictions.is_some() || o.smtpd_recipient_restrictions.is_some();
        // As Postfix's check, a safeguard after `permit` does not count:
        // it is never reached.
        let reachable_safeguard = |list: &[Restriction]| {
            list.iter()
                .take_while(|r| **r != Restriction::Permit)
                .any(Restriction::is_relay_safeguard)
        };
        let safe = reachable_safeguard(&policy.relay_restrictions)
            || reachable_safeguard(&policy.recipient_restrictions);
        let open = "neither smtpd_relay_restrictions nor smtpd_recipient_restrictions contains \
             reject, defer, reject_unauth_destination or defer_unauth_destination: that would \
             make an open relay";
        if !safe {
            if overridden {
                problems.push(Problem::listener(
                    listener_origin,
                    format!("listener '{}': {open}", listener.name),
                ));
            } else {
                let key = if entries["smtpd_relay_restrictions"].origin == Origin::Default {
                    lists[1]
                } else {
                    lists[0]
                };
                problems.push(Problem::value(
                    &entries[key].origin,
                    key,
                    format!("{open} (listener '{}')", listener.name),
                ));
                // One report per key is enough when no listener overrides.
                return;
            }
        }
        if policy.sasl_auth_enable
            && config.smtpd_sasl_password_file.is_none()
            && !failed.contains("smtpd_sasl_password_file")
        {
            problems.push(Problem::value(
                &entries["smtpd_sasl_password_file"].origin,
                "smtpd_sasl_password_file",
                format!(
                    "AUTH is enabled on listener '{}' but no password file is set; create one \
                     with `towerpost passwd add USER` and set smtpd_sasl_password_file",
                    listener.name
                ),
            ));
        }
        if policy.tls_security_level != SmtpdTlsLevel::None && listener.tls == TlsMode::None {
            problems.push(Problem::listener(
                listener_origin,
                format!(
                    "listener '{}': smtpd_tls_security_level = \"{}\" needs tls = \"starttls\" \
                     or \"implicit\"",
                    listener.name, policy.tls_security_level
                ),
            ));
        }
    }
}

/// Whether `entry` of the table `key` may be used: tables are only read from
/// the file, so an environment variable is a problem.
fn file_only(entry: &Entry, key: &str, problems: &mut Vec<Problem>) -> bool {
    if let Origin::Env(_) = entry.origin {
        problems.push(Problem::value(
            &entry.origin,
            key,
            "this table cannot be set from the environment; set it in the file",
        ));
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_cover_every_key() {
        let config = Config::default();
        let shown: Vec<&str> = config.settings().into_iter().map(|(k, _)| k).collect();
        assert_eq!(shown, keys());
    }

    #[test]
    fn inline_tables_quote_keys_that_are_not_bare() {
        assert_eq!(inline_table([]), "{}");
        let fields = [
            ("a-b_1", "1".to_owned()),
            ("x.y", "2".to_owned()),
            ("*", "3".to_owned()),
        ];
        assert_eq!(inline_table(fields), r#"{ a-b_1 = 1, "x.y" = 2, "*" = 3 }"#);
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
        let config =
            Config::load_with_env(None, &[("TOWERPOST_MYHOSTNAME", "mx.example.com")]).unwrap();
        assert_eq!(config.smtpd_banner, "mx.example.com ESMTP towerpost");
        assert_eq!(config.mydomain, "example.com");
    }
}
