//! Rendering settings back into configuration syntax, for `config show`
//! and the generated key reference: one [`Show`] implementation per value
//! type, so a new key of a known type needs nothing here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::{
    AddressMap, BareNewline, Listener, ListenerOverrides, LogFormat, Nexthop, PasswordMap,
    RateLimit, Restriction, SaslSecurityOption, SmtpTlsLevel, SmtpdTlsLevel, TlsPolicyMap,
    TransportMapEntry, UpstreamProxyProtocol, UserRule,
};

/// A value's rendering as a [`Setting`].
pub(crate) trait Show {
    /// The typed setting to render.
    fn show(&self) -> Setting<'_>;
}

impl Show for String {
    fn show(&self) -> Setting<'_> {
        Setting::Text(self)
    }
}

impl Show for Vec<String> {
    fn show(&self) -> Setting<'_> {
        Setting::List(self.clone())
    }
}

macro_rules! show_int {
    ($($t:ty),*) => {$(
        impl Show for $t {
            fn show(&self) -> Setting<'_> {
                Setting::Int(*self as u64)
            }
        }
    )*};
}
show_int!(u8, u16, u32, u64, usize);

impl Show for bool {
    fn show(&self) -> Setting<'_> {
        Setting::Bool(*self)
    }
}

impl Show for Duration {
    fn show(&self) -> Setting<'_> {
        Setting::Duration(*self)
    }
}

impl Show for PathBuf {
    fn show(&self) -> Setting<'_> {
        Setting::Path(Some(self))
    }
}

impl Show for Option<PathBuf> {
    fn show(&self) -> Setting<'_> {
        Setting::Path(self.as_deref())
    }
}

impl Show for Vec<PathBuf> {
    fn show(&self) -> Setting<'_> {
        Setting::List(self.iter().map(|p| p.display().to_string()).collect())
    }
}

impl Show for Vec<IpNet> {
    fn show(&self) -> Setting<'_> {
        Setting::List(self.iter().map(postfix_network).collect())
    }
}

impl Show for Vec<Restriction> {
    fn show(&self) -> Setting<'_> {
        Setting::List(render_restrictions(self))
    }
}

impl Show for Vec<UserRule> {
    fn show(&self) -> Setting<'_> {
        Setting::List(self.iter().map(ToString::to_string).collect())
    }
}

impl Show for Vec<SaslSecurityOption> {
    fn show(&self) -> Setting<'_> {
        Setting::List(self.iter().map(|o| o.as_str().to_owned()).collect())
    }
}

impl Show for Option<Nexthop> {
    fn show(&self) -> Setting<'_> {
        Setting::Rendered(self.as_ref().map(ToString::to_string).unwrap_or_default())
    }
}

impl Show for Option<RateLimit> {
    /// `"N/unit"`, or `0` for none.
    fn show(&self) -> Setting<'_> {
        Setting::Rendered(self.map_or_else(|| "0".to_owned(), |r| r.to_string()))
    }
}

impl Show for LogFormat {
    fn show(&self) -> Setting<'_> {
        Setting::Word(self.as_str())
    }
}

impl Show for Option<std::net::SocketAddr> {
    fn show(&self) -> Setting<'_> {
        Setting::Rendered(self.map(|a| a.to_string()).unwrap_or_default())
    }
}

impl Show for BareNewline {
    fn show(&self) -> Setting<'_> {
        Setting::Word(self.as_str())
    }
}

impl Show for SmtpTlsLevel {
    fn show(&self) -> Setting<'_> {
        Setting::Word(self.as_str())
    }
}

impl Show for SmtpdTlsLevel {
    fn show(&self) -> Setting<'_> {
        Setting::Word(self.as_str())
    }
}

impl Show for UpstreamProxyProtocol {
    fn show(&self) -> Setting<'_> {
        Setting::Word(self.as_str())
    }
}

impl Show for Option<AddressMap> {
    fn show(&self) -> Setting<'_> {
        Setting::Path(self.as_ref().map(|m| m.path.as_path()))
    }
}

impl Show for Option<PasswordMap> {
    fn show(&self) -> Setting<'_> {
        Setting::Path(self.as_ref().map(|m| m.path.as_path()))
    }
}

impl Show for BTreeMap<String, TransportMapEntry> {
    fn show(&self) -> Setting<'_> {
        Setting::Table(inline_table(self.iter().map(|(pattern, route)| {
            (pattern.as_str(), toml_string(&route.to_string()))
        })))
    }
}

impl Show for TlsPolicyMap {
    fn show(&self) -> Setting<'_> {
        Setting::Table(inline_table(self.iter().map(|(destination, policy)| {
            (destination, toml_string(&policy.to_string()))
        })))
    }
}

impl Show for Vec<Listener> {
    fn show(&self) -> Setting<'_> {
        Setting::Listeners(self)
    }
}

/// A restriction list in configuration syntax.
pub(crate) fn render_restrictions(list: &[Restriction]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

/// Postfix's spelling of a network: IPv6 in brackets.
pub(crate) fn postfix_network(net: &IpNet) -> String {
    match net {
        IpNet::V4(net) => net.to_string(),
        IpNet::V6(net) => format!("[{}]/{}", net.addr(), net.prefix_len()),
    }
}

/// A typed setting, for rendering.
pub(crate) enum Setting<'a> {
    Text(&'a str),
    List(Vec<String>),
    Int(u64),
    Bool(bool),
    Duration(Duration),
    Path(Option<&'a Path>),
    Word(&'static str),
    /// Text rendered from a typed value.
    Rendered(String),
    Listeners(&'a [Listener]),
    /// An inline TOML table, already rendered.
    Table(String),
}

impl Setting<'_> {
    /// The value as TOML.
    pub(crate) fn toml(&self) -> String {
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
            Setting::Rendered(s) => toml_string(s),
            Setting::Table(table) => table.clone(),
            Setting::Listeners(listeners) => {
                let tables: Vec<String> = listeners
                    .iter()
                    .map(|l| {
                        let mut fields = vec![
                            ("name", toml_string(&l.name)),
                            ("address", toml_string(&l.address.to_string())),
                            ("tls", toml_string(l.tls.as_str())),
                        ];
                        fields.extend(render_overrides(&l.overrides));
                        inline_table(fields)
                    })
                    .collect();
                format!("[{}]", tables.join(", "))
            }
        }
    }

    /// The value as text inside another value (`$name`); `None` for tables.
    pub(crate) fn plain(&self) -> Option<String> {
        Some(match self {
            Setting::Text(s) => (*s).to_owned(),
            Setting::List(items) => items.join(", "),
            Setting::Int(n) => n.to_string(),
            Setting::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
            Setting::Duration(d) => humantime::format_duration(*d).to_string(),
            Setting::Path(p) => p.map(|p| p.display().to_string()).unwrap_or_default(),
            Setting::Word(w) => (*w).to_owned(),
            Setting::Rendered(s) => s.clone(),
            Setting::Listeners(_) | Setting::Table(_) => return None,
        })
    }
}

/// The overrides a listener sets, as (key, TOML value) pairs.
pub(crate) fn render_overrides(o: &ListenerOverrides) -> Vec<(&'static str, String)> {
    let list = |l: &[Restriction]| {
        let items: Vec<String> = render_restrictions(l)
            .iter()
            .map(|i| toml_string(i))
            .collect();
        format!("[{}]", items.join(", "))
    };
    let mut out = Vec::new();
    if let Some(b) = o.smtpd_sasl_auth_enable {
        out.push(("smtpd_sasl_auth_enable", b.to_string()));
    }
    if let Some(b) = o.smtpd_tls_auth_only {
        out.push(("smtpd_tls_auth_only", b.to_string()));
    }
    if let Some(level) = o.smtpd_tls_security_level {
        out.push(("smtpd_tls_security_level", toml_string(level.as_str())));
    }
    if let Some(protocol) = o.smtpd_upstream_proxy_protocol {
        out.push((
            "smtpd_upstream_proxy_protocol",
            toml_string(protocol.as_str()),
        ));
    }
    for (key, value) in [
        ("smtpd_client_restrictions", &o.smtpd_client_restrictions),
        ("smtpd_helo_restrictions", &o.smtpd_helo_restrictions),
        ("smtpd_sender_restrictions", &o.smtpd_sender_restrictions),
        ("smtpd_relay_restrictions", &o.smtpd_relay_restrictions),
        (
            "smtpd_recipient_restrictions",
            &o.smtpd_recipient_restrictions,
        ),
    ] {
        if let Some(value) = value {
            out.push((key, list(value)));
        }
    }
    out
}

/// An inline TOML table of (key, rendered value) pairs; keys are quoted
/// unless they are bare keys.
pub(crate) fn inline_table<'a>(fields: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let fields: Vec<String> = fields
        .into_iter()
        .map(|(key, value)| {
            let bare = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            let key = if bare {
                key.to_owned()
            } else {
                toml_string(key)
            };
            format!("{key} = {value}")
        })
        .collect();
    if fields.is_empty() {
        "{}".to_owned()
    } else {
        format!("{{ {} }}", fields.join(", "))
    }
}

/// A TOML basic string.
pub(crate) fn toml_string(s: &str) -> String {
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
