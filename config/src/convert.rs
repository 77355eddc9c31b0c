//! Conversion of expanded figment values into typed settings.
//!
//! Each function returns a message saying what was expected and what was
//! found; the caller adds the origin and the key.
//!
//! Why one long file: 38 small converters, one per kind of value a key
//! takes, sharing the wording of their errors; each is found by its name.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use figment::value::{Dict, Value};
use ipnet::IpNet;
use towerpost_protocol::valid_domain;

use crate::error::{Origin, Problem};
use crate::keys::{LISTENER_KEYS, TRANSPORT_KEYS, keys, suggest};
use crate::{
    BareNewline, Listener, ListenerOverrides, LogFormat, Nexthop, SmtpTlsLevel, TlsMode,
    TransportConfig, TransportKind, TransportMapEntry, UpstreamProxyProtocol,
};

/// Describes a value for "found ..." in messages.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{:?}", c.to_string()),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => {
            if let Some(i) = n.to_i128() {
                i.to_string()
            } else if let Some(u) = n.to_u128() {
                u.to_string()
            } else {
                n.to_f64().map(|f| f.to_string()).unwrap_or_default()
            }
        }
        Value::Empty(..) => "an empty value".to_owned(),
        Value::Array(..) => "an array".to_owned(),
        Value::Dict(..) => "a table".to_owned(),
    }
}

fn found(expected: &str, value: &Value) -> String {
    format!("expected {expected}, found {}", describe(value))
}

/// A string without control characters (which could break SMTP replies).
pub(crate) fn text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(_, s) => {
            if s.chars().any(char::is_control) {
                Err(format!(
                    "expected text without control characters (such as line breaks), found {s:?}"
                ))
            } else {
                Ok(s.clone())
            }
        }
        Value::Char(_, c) => text(&Value::from(c.to_string())),
        other => Err(found("a string", other)),
    }
}

/// `smtpd_upstream_proxy_protocol`: empty or `haproxy`.
pub(crate) fn upstream_proxy_protocol(value: &Value) -> Result<UpstreamProxyProtocol, String> {
    let s = text(value)?;
    match s.trim().to_ascii_lowercase().as_str() {
        "" => Ok(UpstreamProxyProtocol::None),
        "haproxy" => Ok(UpstreamProxyProtocol::Haproxy),
        _ => Err(format!("expected \"\" or \"haproxy\", found {s:?}")),
    }
}

/// A host or domain name: non-empty, no whitespace or control characters.
pub(crate) fn host_name(value: &Value) -> Result<String, String> {
    // Postfix's mail_params.c insists on valid_hostname() for both keys.
    let s = text(value)?;
    if !valid_domain(&s) {
        return Err(found("a host name such as \"mail.example.com\"", value));
    }
    Ok(s)
}

/// A boolean: TOML `true` / `false`, or the strings "yes" / "no" (and
/// "true" / "false", as environment variables are strings).
pub(crate) fn boolean(value: &Value) -> Result<bool, String> {
    const EXPECTED: &str = "true/false or \"yes\"/\"no\"";
    match value {
        Value::Bool(_, b) => Ok(*b),
        Value::String(_, s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" => Ok(true),
            "no" | "false" => Ok(false),
            _ => Err(found(EXPECTED, value)),
        },
        other => Err(found(EXPECTED, other)),
    }
}

/// An integer in `min..=max`, given as a TOML integer or a string of digits.
pub(crate) fn integer(value: &Value, min: u64, max: u64) -> Result<u64, String> {
    let expected = if max == u64::MAX && min == 0 {
        "a non-negative integer".to_owned()
    } else if max == u64::MAX {
        format!("an integer of at least {min}")
    } else {
        format!("an integer from {min} to {max}")
    };
    let n: Option<i128> = match value {
        Value::Num(_, n) => match (n.to_u128(), n.to_i128()) {
            (Some(u), _) => Some(i128::try_from(u).unwrap_or(i128::MAX)),
            (None, signed) => signed,
        },
        Value::String(_, s) => {
            let s = s.trim();
            s.parse::<i128>().ok().filter(|_| !s.starts_with('+'))
        }
        _ => None,
    };
    match n {
        Some(n) if n >= i128::from(min) && n <= i128::from(max) => {
            Ok(u64::try_from(n).unwrap_or(max))
        }
        _ => Err(found(&expected, value)),
    }
}

/// An integer in `min..=max` as a `usize`.
pub(crate) fn count(value: &Value, min: usize, max: usize) -> Result<usize, String> {
    let n = integer(value, min as u64, max as u64)?;
    usize::try_from(n).map_err(|_| found("a smaller integer", value))
}

/// An integer in `min..=max` as a narrower integer type such as `u8`.
pub(crate) fn narrow<T>(value: &Value, min: T, max: T) -> Result<T, String>
where
    T: TryFrom<u64> + Into<u64>,
{
    let n = integer(value, min.into(), max.into())?;
    T::try_from(n).map_err(|_| found("a smaller integer", value))
}

const DURATION_EXPECTED: &str = "a duration with a unit such as \"300s\" or \"5m\"";

/// A duration in humantime syntax; a bare number is refused since its unit
/// would be a guess.
pub(crate) fn duration(value: &Value) -> Result<Duration, String> {
    match value {
        Value::String(_, s) => {
            humantime::parse_duration(s.trim()).map_err(|_| found(DURATION_EXPECTED, value))
        }
        other => Err(found(DURATION_EXPECTED, other)),
    }
}

/// A duration, or a bare `0` (Postfix writes `0` for "never" or "at once").
pub(crate) fn duration_or_zero(value: &Value) -> Result<Duration, String> {
    match value {
        Value::Num(_, n) if n.to_u128() == Some(0) || n.to_i128() == Some(0) => Ok(Duration::ZERO),
        Value::String(_, s) if s.trim() == "0" => Ok(Duration::ZERO),
        Value::String(..) => duration(value),
        other => Err(found(&format!("{DURATION_EXPECTED}, or 0"), other)),
    }
}

const RATE_EXPECTED: &str = "a rate \"N/unit\" such as \"600/1h\" or \"10/1m\", or 0";

/// `"N/unit"` (N messages per unit), or `0` for no limit.
pub(crate) fn rate_limit(value: &Value) -> Result<Option<crate::RateLimit>, String> {
    let text = match value {
        Value::Num(_, n) if n.to_u128() == Some(0) || n.to_i128() == Some(0) => return Ok(None),
        Value::String(_, s) => s.trim(),
        other => return Err(found(RATE_EXPECTED, other)),
    };
    if text == "0" {
        return Ok(None);
    }
    let parsed = text.split_once('/').and_then(|(n, unit)| {
        let messages = n.trim().parse::<u32>().ok().filter(|n| *n > 0)?;
        let per = humantime::parse_duration(unit.trim())
            .ok()
            .filter(|d| !d.is_zero())?;
        Some(crate::RateLimit { messages, per })
    });
    parsed.map(Some).ok_or_else(|| found(RATE_EXPECTED, value))
}

/// A duration that must not be zero.
pub(crate) fn positive_duration(value: &Value) -> Result<Duration, String> {
    let d = duration(value)?;
    if d.is_zero() {
        return Err(found("a duration greater than zero", value));
    }
    Ok(d)
}

const LIST_EXPECTED: &str =
    "an array of strings or a string of items separated by commas or spaces";

/// A list: an array of strings or one string, each split on commas and
/// whitespace (so that expanded references to lists split too).
pub(crate) fn list(value: &Value) -> Result<Vec<String>, String> {
    fn split(s: &str, out: &mut Vec<String>) {
        out.extend(
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|item| !item.is_empty())
                .map(str::to_owned),
        );
    }
    let mut out = Vec::new();
    match value {
        Value::String(_, s) => split(s, &mut out),
        Value::Array(_, items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(_, s) => split(s, &mut out),
                    other => {
                        return Err(format!(
                            "expected {LIST_EXPECTED}, found {} at position {}",
                            describe(other),
                            i + 1
                        ));
                    }
                }
            }
        }
        other => return Err(found(LIST_EXPECTED, other)),
    }
    Ok(out)
}

/// Explains list items that are valid in Postfix but not in towerpost.
pub(crate) fn unsupported_hint(item: &str) -> &'static str {
    let is_table = item.split_once(':').is_some_and(|(kind, _)| {
        !kind.is_empty()
            && kind.chars().all(|c| c.is_ascii_lowercase())
            && !kind.chars().all(|c| c.is_ascii_hexdigit())
    });
    if item.starts_with('/') || is_table {
        " (lookup tables and files are not supported)"
    } else if item.starts_with('!') {
        " (exclusions with '!' are not supported)"
    } else {
        ""
    }
}

/// A list of networks in Postfix syntax: `127.0.0.0/8`, `[::1]/128`,
/// `[2001:db8::]/32`, `::1/128`, or a plain address (a host route).
pub(crate) fn networks(value: &Value) -> Result<Vec<IpNet>, String> {
    list(value)?.iter().map(|item| network(item)).collect()
}

fn network(item: &str) -> Result<IpNet, String> {
    let bad = || {
        format!(
            "expected networks such as \"192.0.2.0/24\", \"[2001:db8::]/32\" or an IP address, \
             found {item:?}{}",
            unsupported_hint(item)
        )
    };
    let (addr, prefix) = match item.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (item, None),
    };
    let addr = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(bad)?,
        None => max,
    };
    let net = IpNet::new(addr, prefix).map_err(|_| bad())?;
    if net.network() != addr {
        let suggestion = match net {
            IpNet::V4(_) => format!("{}", net.trunc()),
            IpNet::V6(_) => format!("[{}]/{}", net.network(), net.prefix_len()),
        };
        return Err(format!(
            "network {item:?} has host bits set (did you mean \"{suggestion}\"?)"
        ));
    }
    Ok(net)
}

/// A list of domain names; a leading dot (`.example.com`, subdomains only)
/// is kept. Domains are lower-cased.
pub(crate) fn domains(value: &Value) -> Result<Vec<String>, String> {
    list(value)?
        .into_iter()
        .map(|item| {
            let name = item.strip_prefix('.').unwrap_or(&item);
            if valid_domain(name.strip_suffix('.').unwrap_or(name)) {
                Ok(item.to_lowercase())
            } else {
                Err(format!(
                    "expected domain names such as \"example.com\", found {item:?}{}",
                    unsupported_hint(&item)
                ))
            }
        })
        .collect()
}

/// A non-empty path.
pub(crate) fn path(value: &Value) -> Result<PathBuf, String> {
    match optional_path(value)? {
        Some(path) => Ok(path),
        None => Err(found("a non-empty path", value)),
    }
}

/// A path, or nothing for the empty string.
pub(crate) fn optional_path(value: &Value) -> Result<Option<PathBuf>, String> {
    let s = text(value).map_err(|_| found("a path", value))?;
    Ok((!s.is_empty()).then(|| PathBuf::from(s)))
}

/// A list of non-empty paths.
pub(crate) fn paths(value: &Value) -> Result<Vec<PathBuf>, String> {
    Ok(list(value)?.into_iter().map(PathBuf::from).collect())
}

/// `smtpd_forbid_bare_newline`: `normalize` (or `yes`) or `reject`.
pub(crate) fn bare_newline(value: &Value) -> Result<BareNewline, String> {
    const REFUSED: &str = "is refused: accepting a bare newline (LF without CR) as the end of \
         a line allows SMTP smuggling; use \"normalize\" (same as \"yes\") or \"reject\"";
    match value {
        Value::Bool(_, true) => Ok(BareNewline::Normalize),
        Value::Bool(_, false) => Err(format!("false {REFUSED}")),
        Value::String(_, s) => match s.trim().to_ascii_lowercase().as_str() {
            "normalize" | "yes" | "true" => Ok(BareNewline::Normalize),
            "reject" => Ok(BareNewline::Reject),
            "no" | "false" => Err(format!("{s:?} {REFUSED}")),
            _ => Err(found("\"normalize\" (or \"yes\") or \"reject\"", value)),
        },
        other => Err(found("\"normalize\" (or \"yes\") or \"reject\"", other)),
    }
}

/// `log_format`: `postfix` or `json`.
pub(crate) fn log_format(value: &Value) -> Result<LogFormat, String> {
    const EXPECTED: &str = "\"postfix\" or \"json\"";
    match value {
        Value::String(_, s) => match s.trim().to_ascii_lowercase().as_str() {
            "postfix" => Ok(LogFormat::Postfix),
            "json" => Ok(LogFormat::Json),
            _ => Err(found(EXPECTED, value)),
        },
        other => Err(found(EXPECTED, other)),
    }
}

/// `syslog_name`: the program name in each log line, before
/// `/service[pid]:`. Letters, digits, `.`, `_`, `-` and `/` (Postfix's
/// `postfix/submission`), so no log line can be forged through it.
pub(crate) fn syslog_name(value: &Value) -> Result<String, String> {
    let name = text(value)?;
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/');
    if name.is_empty() || name.len() > 64 || !name.chars().all(fine) {
        return Err(format!(
            "expected a name of up to 64 letters, digits, '.', '_', '-' or '/', found {name:?}"
        ));
    }
    Ok(name)
}

fn tls_mode(value: &Value) -> Result<TlsMode, String> {
    const EXPECTED: &str = "\"none\", \"starttls\" or \"implicit\"";
    match value {
        Value::String(_, s) => match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(TlsMode::None),
            "starttls" => Ok(TlsMode::StartTls),
            "implicit" => Ok(TlsMode::Implicit),
            _ => Err(found(EXPECTED, value)),
        },
        other => Err(found(EXPECTED, other)),
    }
}

/// A socket address, or nothing for the empty string.
pub(crate) fn optional_socket_address(value: &Value) -> Result<Option<SocketAddr>, String> {
    match value {
        Value::String(_, s) if s.trim().is_empty() => Ok(None),
        other => socket_address(other).map(Some),
    }
}

fn socket_address(value: &Value) -> Result<SocketAddr, String> {
    const EXPECTED: &str = "a socket address such as \"127.0.0.1:25\" or \"[::1]:25\"";
    match value {
        Value::String(_, s) => s.trim().parse().map_err(|_| found(EXPECTED, value)),
        other => Err(found(EXPECTED, other)),
    }
}

/// The `listener` array of tables. Problems are pushed with `origin`;
/// `None` if there were any.
pub(crate) fn listeners(
    value: &Value,
    origin: &Origin,
    problems: &mut Vec<Problem>,
) -> Option<Vec<Listener>> {
    let before = problems.len();
    let tables: Vec<&Dict> = match value {
        Value::Array(_, items) if items.is_empty() => {
            problems.push(Problem::value(
                origin,
                "listener",
                "at least one [[listener]] table is required",
            ));
            return None;
        }
        Value::Array(_, items) => {
            let mut tables = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Dict(_, d) => tables.push(d),
                    other => problems.push(Problem::value(
                        origin,
                        "listener",
                        format!(
                            "expected an array of tables ([[listener]]), found {} at position {}",
                            describe(other),
                            i + 1
                        ),
                    )),
                }
            }
            tables
        }
        Value::Dict(_, d) => vec![d],
        other => {
            problems.push(Problem::value(
                origin,
                "listener",
                found("an array of tables ([[listener]])", other),
            ));
            return None;
        }
    };

    let mut out: Vec<Listener> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut addresses: Vec<(SocketAddr, String)> = Vec::new();
    for (i, table) in tables.into_iter().enumerate() {
        let label = match table.get("name") {
            Some(Value::String(_, name)) => format!("listener '{name}'"),
            _ => format!("listener #{}", i + 1),
        };
        let mut fail = |message: String| {
            problems.push(Problem::listener(origin, format!("{label}: {message}")));
        };
        for key in table.keys() {
            if !LISTENER_KEYS.contains(&key.as_str()) {
                let hint = if keys().contains(&key.as_str()) {
                    " (top-level keys must come before the first [[listener]] table)".to_owned()
                } else {
                    suggest(key, LISTENER_KEYS)
                        .map(|s| format!(" (did you mean '{s}'?)"))
                        .unwrap_or_default()
                };
                fail(format!("unknown key '{key}'{hint}"));
            }
        }
        let name = match table.get("name").map(text) {
            Some(Ok(name)) if !name.is_empty() && !name.chars().any(char::is_whitespace) => {
                Some(name)
            }
            Some(Ok(name)) => {
                fail(format!(
                    "key 'name': expected a name without spaces, found {name:?}"
                ));
                None
            }
            Some(Err(message)) => {
                fail(format!("key 'name': {message}"));
                None
            }
            None => {
                fail("missing key 'name'".to_owned());
                None
            }
        };
        let address = match table.get("address").map(socket_address) {
            Some(Ok(address)) => Some(address),
            Some(Err(message)) => {
                fail(format!("key 'address': {message}"));
                None
            }
            None => {
                fail("missing key 'address' (such as \"127.0.0.1:25\")".to_owned());
                None
            }
        };
        let tls = match table.get("tls").map(tls_mode) {
            Some(Ok(tls)) => Some(tls),
            Some(Err(message)) => {
                fail(format!("key 'tls': {message}"));
                None
            }
            None => Some(TlsMode::None),
        };
        if let Some(name) = &name {
            if names.contains(name) {
                fail(format!(
                    "name '{name}' is already used by an earlier listener"
                ));
            }
            names.push(name.clone());
        }
        if let Some(address) = address {
            if let Some((_, other)) = addresses
                .iter()
                .find(|(a, _)| *a == address && address.port() != 0)
            {
                fail(format!("address {address} is already used by {other}"));
            }
            addresses.push((address, label.clone()));
        }
        let overrides = listener_overrides(table, &mut fail);
        if let (Some(name), Some(address), Some(tls)) = (name, address, tls) {
            out.push(Listener {
                name,
                address,
                tls,
                overrides,
            });
        }
    }
    (problems.len() == before).then_some(out)
}

/// The top-level keys a listener may override, parsed with the same rules.
fn listener_overrides(table: &Dict, fail: &mut impl FnMut(String)) -> ListenerOverrides {
    use crate::restrictions::{ListKind, restrictions};
    let mut o = ListenerOverrides::default();
    let mut one = |key: &str, result: Result<(), Vec<String>>| {
        if let Err(messages) = result {
            for message in messages {
                fail(format!("key '{key}': {message}"));
            }
        }
    };
    for (key, value) in table {
        let single = |r: Result<(), String>| r.map_err(|m| vec![m]);
        let list = |slot: &mut Option<Vec<crate::Restriction>>| {
            restrictions(value, ListKind::Smtpd).map(|l| *slot = Some(l))
        };
        let result = match key.as_str() {
            "smtpd_sasl_auth_enable" => {
                single(boolean(value).map(|b| o.smtpd_sasl_auth_enable = Some(b)))
            }
            "smtpd_tls_auth_only" => {
                single(boolean(value).map(|b| o.smtpd_tls_auth_only = Some(b)))
            }
            "smtpd_tls_security_level" => single(
                crate::sasl::smtpd_tls_level(value).map(|l| o.smtpd_tls_security_level = Some(l)),
            ),
            "smtpd_client_restrictions" => list(&mut o.smtpd_client_restrictions),
            "smtpd_helo_restrictions" => list(&mut o.smtpd_helo_restrictions),
            "smtpd_sender_restrictions" => list(&mut o.smtpd_sender_restrictions),
            "smtpd_relay_restrictions" => list(&mut o.smtpd_relay_restrictions),
            "smtpd_recipient_restrictions" => list(&mut o.smtpd_recipient_restrictions),
            "smtpd_upstream_proxy_protocol" => single(
                upstream_proxy_protocol(value).map(|p| o.smtpd_upstream_proxy_protocol = Some(p)),
            ),
            _ => Ok(()),
        };
        one(key, result);
    }
    o
}

/// `smtp_tls_security_level` (and `tls_security_level` of a transport).
pub(crate) fn smtp_tls_level(value: &Value) -> Result<SmtpTlsLevel, String> {
    const EXPECTED: &str = "\"none\", \"may\", \"encrypt\", \"verify\" or \"secure\"";
    match value {
        Value::String(_, s) => match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(SmtpTlsLevel::None),
            "may" => Ok(SmtpTlsLevel::May),
            "encrypt" => Ok(SmtpTlsLevel::Encrypt),
            "verify" => Ok(SmtpTlsLevel::Verify),
            "secure" => Ok(SmtpTlsLevel::Secure),
            "dane" | "dane-only" | "fingerprint" => {
                Err(format!("{s:?} is not supported; expected {EXPECTED}"))
            }
            _ => Err(found(EXPECTED, value)),
        },
        other => Err(found(EXPECTED, other)),
    }
}

/// The `type` of a transport.
pub(crate) fn transport_kind(value: &Value) -> Result<TransportKind, String> {
    const EXPECTED: &str = "\"smtp\", \"discard\" or \"error\"";
    match value {
        Value::String(_, s) => match s.trim().to_ascii_lowercase().as_str() {
            "smtp" => Ok(TransportKind::Smtp),
            "discard" => Ok(TransportKind::Discard),
            "error" => Ok(TransportKind::Error),
            _ => Err(found(EXPECTED, value)),
        },
        other => Err(found(EXPECTED, other)),
    }
}

const NEXTHOP_EXPECTED: &str = "a next hop such as \"example.com\", \"example.com:587\", \
     \"[mail.example.com]\", \"[192.0.2.1]:25\" or \"[2001:db8::1]:25\"";

/// `relayhost`: a next hop, or nothing for the empty string.
pub(crate) fn relayhost(value: &Value) -> Result<Option<Nexthop>, String> {
    let s = text(value).map_err(|_| found(NEXTHOP_EXPECTED, value))?;
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    nexthop(s).map(Some)
}

/// A next hop in Postfix syntax: `domain`, `domain:port`, `[host]`,
/// `[host]:port`, where host is a host name, an IPv4 address, an IPv6
/// address or `ipv6:` and an IPv6 address; port is a number or one of a few
/// service names.
pub(crate) fn nexthop(s: &str) -> Result<Nexthop, String> {
    let bad = |hint: &str| format!("expected {NEXTHOP_EXPECTED}, found {s:?}{hint}");
    let (host, port, mx_lookup) = if let Some(rest) = s.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(bad(" (missing ']')"));
        };
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':').ok_or_else(|| bad(""))?),
        };
        let host = match inside.get(..5) {
            Some(prefix) if prefix.eq_ignore_ascii_case("ipv6:") => inside[5..]
                .parse::<Ipv6Addr>()
                .map_err(|_| bad(" (not an IPv6 address after 'ipv6:')"))?
                .to_string(),
            _ => match inside.parse::<IpAddr>() {
                Ok(address) => address.to_string(),
                Err(_) => host_name_part(inside).ok_or_else(|| bad(""))?,
            },
        };
        (host, port, false)
    } else {
        let (name, port) = match s.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (s, None),
        };
        if s.matches(':').count() > 1 || name.parse::<IpAddr>().is_ok() {
            return Err(bad(
                " (write an IP address in brackets, such as \"[192.0.2.1]\" or \
                 \"[2001:db8::1]\")",
            ));
        }
        (host_name_part(name).ok_or_else(|| bad(""))?, port, true)
    };
    let port = port
        .map(|p| service_port(p).ok_or_else(|| bad(PORT_HINT)))
        .transpose()?;
    Ok(Nexthop {
        host,
        port,
        mx_lookup,
    })
}

const PORT_HINT: &str = " (a port is a number from 1 to 65535 or one of smtp, submission, \
     smtps and submissions)";

/// A host or domain name in a next hop: lower-cased, without a trailing
/// dot.
fn host_name_part(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    valid_domain(name).then(|| name.to_lowercase())
}

/// A port number from 1 to 65535, or a service name.
fn service_port(port: &str) -> Option<u16> {
    match port {
        "smtp" => Some(25),
        "submission" => Some(587),
        "smtps" | "submissions" => Some(465),
        _ if port.bytes().all(|b| b.is_ascii_digit()) => {
            port.parse::<u16>().ok().filter(|&p| p != 0)
        }
        _ => None,
    }
}

/// Whether `name` is a valid transport name.
fn is_transport_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

const TRANSPORT_NAME_EXPECTED: &str = "a transport name of letters, digits, '-', '_' and '.'";

/// Checks that `name` is a declared transport; `declared` is `None` when
/// the transports could not be read (which has been reported).
fn check_declared(name: &str, declared: Option<&BTreeSet<String>>) -> Result<(), String> {
    let Some(declared) = declared else {
        return Ok(());
    };
    if !is_transport_name(name) {
        return Err(format!(
            "expected {TRANSPORT_NAME_EXPECTED}, found {name:?}"
        ));
    }
    if declared.contains(name) {
        return Ok(());
    }
    let names: Vec<&str> = declared.iter().map(String::as_str).collect();
    let hint = match suggest(name, &names) {
        Some(s) => format!("did you mean '{s}'? "),
        None => String::new(),
    };
    Err(format!(
        "unknown transport '{name}' ({hint}declared: {}; declare others as [transport.NAME] \
         tables)",
        names.join(", ")
    ))
}

/// `default_transport`: the name of a declared transport.
pub(crate) fn transport_name(
    value: &Value,
    declared: Option<&BTreeSet<String>>,
) -> Result<String, String> {
    let name = text(value).map_err(|_| found("a transport name such as \"smtp\"", value))?;
    let name = name.trim();
    if name.contains(':') {
        return Err(format!(
            "expected a transport name such as \"smtp\", found {name:?} (a next hop is not \
             supported here; use relayhost or transport_maps)"
        ));
    }
    if !is_transport_name(name) {
        return Err(found(TRANSPORT_NAME_EXPECTED, value));
    }
    check_declared(name, declared)?;
    Ok(name.to_owned())
}

/// `defer_transports`: a list of declared transport names.
pub(crate) fn transport_names(
    value: &Value,
    declared: Option<&BTreeSet<String>>,
) -> Result<Vec<String>, String> {
    let names = list(value)?;
    for name in &names {
        check_declared(name, declared)?;
    }
    Ok(names)
}

/// The result of reading the `transport` table.
pub(crate) struct Transports {
    /// The transports without problems.
    pub(crate) valid: BTreeMap<String, TransportConfig>,
    /// The names of all transports, with or without problems.
    pub(crate) declared: BTreeSet<String>,
}

/// The `transport` table of `[transport.NAME]` tables; `defaults` gives a
/// transport of a kind with the configuration's defaults. Problems are
/// pushed with `origin`. `None` if the value is not a table at all.
pub(crate) fn transports(
    value: &Value,
    origin: &Origin,
    defaults: impl Fn(TransportKind) -> TransportConfig,
    problems: &mut Vec<Problem>,
) -> Option<Transports> {
    let Value::Dict(_, dict) = value else {
        problems.push(Problem::value(
            origin,
            "transport",
            found("[transport.NAME] tables", value),
        ));
        return None;
    };
    let mut out = Transports {
        valid: BTreeMap::new(),
        declared: BTreeSet::new(),
    };
    for (name, value) in dict {
        let key = format!("transport.{name}");
        if !is_transport_name(name) {
            problems.push(Problem::value(
                origin,
                "transport",
                format!("expected {TRANSPORT_NAME_EXPECTED}, found {name:?}"),
            ));
            continue;
        }
        out.declared.insert(name.clone());
        let Value::Dict(_, table) = value else {
            problems.push(Problem::value(
                origin,
                &key,
                found(&format!("a table ([{key}])"), value),
            ));
            continue;
        };
        let before = problems.len();
        for k in table.keys() {
            if !TRANSPORT_KEYS.contains(&k.as_str()) {
                let hint = if keys().contains(&k.as_str()) {
                    " (top-level keys must come before the first [transport.NAME] table)".to_owned()
                } else {
                    suggest(k, TRANSPORT_KEYS)
                        .map(|s| format!(" (did you mean '{key}.{s}'?)"))
                        .unwrap_or_default()
                };
                problems.push(Problem::unknown_key(origin, format!("{key}.{k}"), hint));
            }
        }
        let field = |problems: &mut Vec<Problem>, field: &str, message: String| {
            problems.push(Problem::value(origin, &format!("{key}.{field}"), message));
        };
        let kind = match table.get("type").map(transport_kind) {
            Some(Ok(kind)) => Some(kind),
            Some(Err(message)) => {
                field(problems, "type", message);
                None
            }
            None => {
                problems.push(Problem::value(
                    origin,
                    &key,
                    "missing key 'type' (\"smtp\", \"discard\" or \"error\")",
                ));
                None
            }
        };
        // Without a valid type, the other keys are still checked.
        let mut transport = defaults(kind.unwrap_or(TransportKind::Smtp));
        let any = usize::MAX;
        for (k, limit) in [
            (
                "destination_concurrency_limit",
                &mut transport.destination_concurrency_limit,
            ),
            (
                "destination_recipient_limit",
                &mut transport.destination_recipient_limit,
            ),
        ] {
            match table.get(k).map(|v| count(v, 1, any)) {
                Some(Ok(n)) => *limit = n,
                Some(Err(message)) => field(problems, k, message),
                None => {}
            }
        }
        match table.get("destination_rate_delay").map(duration_or_zero) {
            Some(Ok(d)) => transport.destination_rate_delay = d,
            Some(Err(message)) => field(problems, "destination_rate_delay", message),
            None => {}
        }
        match table.get("destination_rate_limit").map(rate_limit) {
            Some(Ok(r)) => transport.destination_rate_limit = r,
            Some(Err(message)) => field(problems, "destination_rate_limit", message),
            None => {}
        }
        match table.get("tls_security_level") {
            Some(_) if kind.is_some_and(|k| k != TransportKind::Smtp) => field(
                problems,
                "tls_security_level",
                format!(
                    "only allowed with type = \"smtp\", not \"{}\"",
                    transport.kind
                ),
            ),
            Some(v) => match smtp_tls_level(v) {
                Ok(level) => transport.tls_security_level = level,
                Err(message) => field(problems, "tls_security_level", message),
            },
            None => {}
        }
        if problems.len() == before && kind.is_some() {
            out.valid.insert(name.clone(), transport);
        }
    }
    Some(out)
}

/// The `transport_maps` table: domain patterns to `transport:nexthop`.
/// Problems are pushed with `origin`; `None` if there were any.
pub(crate) fn transport_maps(
    value: &Value,
    origin: &Origin,
    declared: Option<&BTreeSet<String>>,
    transports: &BTreeMap<String, TransportConfig>,
    problems: &mut Vec<Problem>,
) -> Option<BTreeMap<String, TransportMapEntry>> {
    const KEY: &str = "transport_maps";
    let Value::Dict(_, dict) = value else {
        problems.push(Problem::value(
            origin,
            KEY,
            found("a table of domain = \"transport:nexthop\"", value),
        ));
        return None;
    };
    let before = problems.len();
    let mut out = BTreeMap::new();
    let mut patterns: BTreeMap<String, &str> = BTreeMap::new();
    for (key, value) in dict {
        let mut fail = |message: String| {
            problems.push(Problem::value(
                origin,
                KEY,
                format!("entry {key:?}: {message}"),
            ));
        };
        let pattern = if key == "*" {
            Some(key.clone())
        } else {
            let (dot, name) = match key.strip_prefix('.') {
                Some(name) => (".", name),
                None => ("", key.as_str()),
            };
            let name = name.strip_suffix('.').unwrap_or(name);
            if valid_domain(name) {
                Some(format!("{dot}{}", name.to_lowercase()))
            } else {
                let hint = if key.contains('@') {
                    " (address patterns are not supported)"
                } else {
                    ""
                };
                fail(format!(
                    "expected a domain, \".domain\" (its subdomains) or \"*\" as the key{hint}"
                ));
                None
            }
        };
        if let Some(pattern) = &pattern {
            if let Some(other) = patterns.get(pattern) {
                fail(format!("same domain as entry {other:?}"));
            } else {
                patterns.insert(pattern.clone(), key);
            }
        }
        let result = match value {
            Value::Dict(..) => {
                fail(format!(
                    "expected \"transport:nexthop\", found a table (quote keys with dots: \
                     \"{key}.…\" = \"…\")"
                ));
                continue;
            }
            value => match text(value) {
                Ok(result) => result,
                Err(_) => {
                    fail(found("\"transport:nexthop\"", value));
                    continue;
                }
            },
        };
        let Some((transport, next)) = result.split_once(':') else {
            fail(format!(
                "expected \"transport:nexthop\" (either part may be empty, as in \
                 \":[relay.example.com]\" or \"discard:\"), found {result:?}"
            ));
            continue;
        };
        let transport = transport.trim();
        let transport = if transport.is_empty() {
            None
        } else if let Err(message) = check_declared(transport, declared) {
            fail(message);
            continue;
        } else {
            Some(transport.to_owned())
        };
        let next = next.trim();
        let nexthop = if next.is_empty() {
            None
        } else {
            match nexthop(next) {
                Ok(nexthop) => Some(nexthop),
                Err(message) => {
                    let kind = transport
                        .as_ref()
                        .and_then(|t| transports.get(t))
                        .map(|t| t.kind);
                    let hint = match kind {
                        Some(TransportKind::Discard | TransportKind::Error) => {
                            " (message texts after discard: and error: are not supported)"
                        }
                        _ => "",
                    };
                    fail(format!("{message}{hint}"));
                    continue;
                }
            }
        };
        if let Some(pattern) = pattern {
            out.insert(pattern, TransportMapEntry { transport, nexthop });
        }
    }
    (problems.len() == before).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::from(v)
    }

    #[test]
    fn booleans_accept_toml_and_postfix_spellings() {
        assert_eq!(boolean(&Value::from(true)), Ok(true));
        assert_eq!(boolean(&s("yes")), Ok(true));
        assert_eq!(boolean(&s("No")), Ok(false));
        assert!(boolean(&s("maybe")).is_err());
        assert!(boolean(&Value::from(1u8)).is_err());
    }

    #[test]
    fn integers_check_their_range() {
        assert_eq!(integer(&Value::from(5000u64), 0, u64::MAX), Ok(5000));
        assert_eq!(integer(&s("5000"), 0, u64::MAX), Ok(5000));
        assert!(integer(&Value::from(-1i64), 0, u64::MAX).is_err());
        let err = integer(&Value::from(0u64), 1, 256).unwrap_err();
        assert_eq!(err, "expected an integer from 1 to 256, found 0");
        let err = integer(&Value::from(100u64), 512, u64::MAX).unwrap_err();
        assert_eq!(err, "expected an integer of at least 512, found 100");
        assert!(integer(&s("12abc"), 0, u64::MAX).is_err());
        assert!(integer(&Value::from(1.5f64), 0, u64::MAX).is_err());
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(duration(&s("300s")), Ok(Duration::from_secs(300)));
        assert_eq!(duration(&s("5m")), Ok(Duration::from_secs(300)));
        assert_eq!(duration(&s("5d")), Ok(Duration::from_secs(5 * 86400)));
        assert_eq!(
            duration(&s("300")).unwrap_err(),
            "expected a duration with a unit such as \"300s\" or \"5m\", found \"300\""
        );
        assert!(duration(&Value::from(300u64)).is_err());
        assert!(positive_duration(&s("0s")).is_err());
    }

    #[test]
    fn rates_are_messages_per_unit() {
        let rate = |messages, secs| {
            Ok(Some(crate::RateLimit {
                messages,
                per: Duration::from_secs(secs),
            }))
        };
        assert_eq!(rate_limit(&s("600/1h")), rate(600, 3600));
        assert_eq!(rate_limit(&s(" 10 / 1m ")), rate(10, 60));
        assert_eq!(rate_limit(&s("0")), Ok(None));
        assert_eq!(rate_limit(&Value::from(0u64)), Ok(None));
        for bad in ["10", "0/1m", "10/0s", "10/often", "-1/1m", "x/1m"] {
            assert!(rate_limit(&s(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_split_on_commas_and_whitespace() {
        assert_eq!(list(&s("a, b c,,d")).unwrap(), ["a", "b", "c", "d"]);
        assert_eq!(list(&s("")).unwrap(), Vec::<String>::new());
        let array = Value::from(vec!["a", "b, c"]);
        assert_eq!(list(&array).unwrap(), ["a", "b", "c"]);
        assert!(list(&Value::from(vec![1u8])).is_err());
    }

    #[test]
    fn networks_accept_postfix_syntax() {
        let nets = networks(&s("127.0.0.0/8 [::1]/128 [2001:db8::]/32 192.0.2.7 ::1")).unwrap();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "127.0.0.0/8",
                "::1/128",
                "2001:db8::/32",
                "192.0.2.7/32",
                "::1/128"
            ]
        );
        assert!(
            networks(&s("10.1.2.3/8"))
                .unwrap_err()
                .contains("10.0.0.0/8")
        );
        assert!(networks(&s("10.0.0.0/33")).is_err());
        assert!(networks(&s("hash:/etc/postfix/network_table")).is_err());
        assert!(networks(&s("example.com")).is_err());
    }

    #[test]
    fn domains_are_checked_and_lowercased() {
        assert_eq!(
            domains(&s("Example.COM .example.org")).unwrap(),
            ["example.com", ".example.org"]
        );
        assert!(domains(&s("hash:/etc/postfix/relay")).is_err());
        assert!(domains(&s("a..b")).is_err());
    }

    #[test]
    fn bare_newline_no_is_refused() {
        assert_eq!(bare_newline(&s("yes")), Ok(BareNewline::Normalize));
        assert_eq!(bare_newline(&s("reject")), Ok(BareNewline::Reject));
        assert!(
            bare_newline(&s("no"))
                .unwrap_err()
                .contains("SMTP smuggling")
        );
        assert!(
            bare_newline(&Value::from(false))
                .unwrap_err()
                .contains("SMTP smuggling")
        );
    }

    #[test]
    fn nexthops_use_postfix_syntax() {
        let shown = |s: &str| nexthop(s).map(|n| n.to_string());
        assert_eq!(shown("Example.COM"), Ok("example.com".to_owned()));
        assert_eq!(shown("example.com.:smtp"), Ok("example.com:25".to_owned()));
        assert_eq!(
            shown("[mx.example.com]:587"),
            Ok("[mx.example.com]:587".to_owned())
        );
        assert_eq!(shown("[IPV6:2001:db8::1]"), Ok("[2001:db8::1]".to_owned()));
        assert_eq!(
            shown("[2001:db8::1]:2525"),
            Ok("[2001:db8::1]:2525".to_owned())
        );
        for bad in [
            "", "[]", "[a", "[a]x", "a:", "a:0", "a:b:c", "10.0.0.1", "[a b]", "a/b",
        ] {
            assert!(nexthop(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn service_names_and_port_numbers() {
        assert_eq!(service_port("smtp"), Some(25));
        assert_eq!(service_port("submission"), Some(587));
        assert_eq!(service_port("smtps"), Some(465));
        assert_eq!(service_port("submissions"), Some(465));
        assert_eq!(service_port("65535"), Some(65535));
        assert_eq!(service_port("0"), None);
        assert_eq!(service_port("+25"), None);
        assert_eq!(service_port("pop3"), None);
    }

    #[test]
    fn only_zero_durations_may_be_bare_numbers() {
        assert_eq!(duration_or_zero(&Value::from(0u8)), Ok(Duration::ZERO));
        assert_eq!(duration_or_zero(&Value::from(0i64)), Ok(Duration::ZERO));
        assert_eq!(duration_or_zero(&s("0h")), Ok(Duration::ZERO));
        assert_eq!(duration_or_zero(&s("5d")), Ok(Duration::from_secs(432_000)));
        assert!(duration_or_zero(&Value::from(5u8)).is_err());
        assert!(duration_or_zero(&s("5")).is_err());
    }
}
