//! MTA-STS (RFC 8461): the TLS policies recipient domains publish.
//!
//! For an MX-lookup destination, the `_mta-sts.DOMAIN` TXT record names
//! the current policy `id`; the policy itself is fetched from
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` (certificate verified,
//! no redirects, at most 64 KiB) and cached for its `max_age`, in memory
//! and in a file that survives restarts. A cached policy is used while its
//! id is current, and also when DNS or the policy host fail (§5.1: that is
//! what stops an attacker who blocks them from downgrading delivery).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::dns::{Dns, PolicyHostResolver};
use super::tls::Trust;

/// RFC 8461 §3.2: the largest `max_age`, one year.
const MAX_AGE_LIMIT: u64 = 31_557_600;
/// §3.3: senders should limit the policy's size; 64 KiB as suggested.
const POLICY_SIZE_LIMIT: usize = 64 * 1024;
/// How long a policy fetch may take. RFC 8461 §3.3 suggests at most a
/// minute; a delivery waits for it, so less.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// Domains kept in the cache; the policy expiring first makes room.
const CACHE_LIMIT: usize = 10_000;
/// The cache file's format version.
const CACHE_VERSION: u32 = 1;
/// §3.3: a cached policy is refreshed (fetched again even though its id
/// is unchanged) once it is this old, or half its `max_age`, whichever
/// comes first, so that it does not lapse while DNS or the policy host
/// are blocked.
const REFRESH_AFTER: u64 = 24 * 3600;
/// After a failed fetch, the domain's policy host is not asked again for
/// this long (deliveries meanwhile go on with what is cached, or none).
const RETRY_FETCH_AFTER: u64 = 300;
/// At most this many `mx:` patterns of at most 253 bytes: a policy is
/// a short list of host names, and it is held in memory for a year.
const MX_PATTERN_LIMIT: usize = 100;
/// The cache file is written at most once per this many milliseconds.
const WRITE_DELAY_MS: u64 = 1000;

/// A policy's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Deliver only over verified TLS to matching MX hosts.
    Enforce,
    /// Deliver as usual; report what enforcing would refuse.
    Testing,
    /// The domain withdrew its policy.
    None,
}

/// A fetched policy, as cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Policy {
    /// The TXT record's `id` it was fetched for.
    pub(crate) id: String,
    pub(crate) mode: Mode,
    /// `mx:` patterns: host names, or `*.` and a domain (one label).
    pub(crate) mx: Vec<String>,
    /// `max_age`, in seconds.
    pub(crate) max_age: u64,
    /// When it was fetched, in seconds since the epoch.
    pub(crate) fetched: u64,
    /// When it was last used, in seconds since the epoch: the cache,
    /// when full, drops the policy used least recently.
    #[serde(default)]
    pub(crate) used: u64,
}

impl Policy {
    /// Whether `host` (an MX host name) matches one of the `mx:` patterns
    /// (RFC 8461 §4.1: a wildcard stands for exactly one label).
    pub(crate) fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
                None => host == *pattern,
            })
    }

    fn expires(&self) -> u64 {
        self.fetched.saturating_add(self.max_age)
    }

    /// Whether it should be fetched again although its id is current.
    fn needs_refresh(&self, now: u64) -> bool {
        now.saturating_sub(self.fetched) >= REFRESH_AFTER.min(self.max_age / 2)
    }

    fn summary(&self) -> String {
        let mode = match self.mode {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        };
        format!(
            "mode={mode}, id={}, max_age={}, mx={}",
            self.id,
            self.max_age,
            self.mx.join(",")
        )
    }
}

/// The `id` of the one `v=STSv1` record among a domain's `_mta-sts` TXT
/// records, if there is exactly one and it is well formed (§3.1).
pub(crate) fn record_id(records: &[String]) -> Option<String> {
    let mut ids = records
        .iter()
        .filter(|r| r.starts_with("v=STSv1"))
        .map(|r| {
            let mut fields = r.split(';').map(str::trim).filter(|f| !f.is_empty());
            if fields.next() != Some("v=STSv1") {
                return None;
            }
            fields.find_map(|f| f.strip_prefix("id=")).filter(|id| {
                (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
            })
        });
    let first = ids.next()?;
    match ids.next() {
        None => first.map(str::to_owned),
        Some(_) => None, // more than one: no policy (§3.1)
    }
}

/// Parses a policy body (§3.2); `id` and `fetched` are the caller's.
pub(crate) fn parse_policy(text: &str, id: &str, fetched: u64) -> Result<Policy, String> {
    let (mut version, mut mode, mut max_age, mut mx) = (None, None, None, Vec::new());
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("not a key: value line: {line:?}"));
        };
        let value = value.trim();
        match key.trim() {
            "version" => {
                version.get_or_insert(value.to_owned());
            }
            "mode" => {
                mode.get_or_insert(value.to_owned());
            }
            "max_age" => {
                max_age.get_or_insert(value.to_owned());
            }
            "mx" => {
                let pattern = value.trim_end_matches('.').to_ascii_lowercase();
                if pattern.len() > 253 || mx.len() >= MX_PATTERN_LIMIT {
                    return Err(format!(
                        "more than {MX_PATTERN_LIMIT} mx patterns, or one longer than 253 bytes"
                    ));
                }
                mx.push(pattern);
            }
            _ => {} // extensions are ignored
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err(format!("version is {version:?}, not STSv1"));
    }
    let mode = match mode.as_deref() {
        Some("enforce") => Mode::Enforce,
        Some("testing") => Mode::Testing,
        Some("none") => Mode::None,
        other => return Err(format!("mode {other:?} is not enforce, testing or none")),
    };
    let max_age = max_age
        .as_deref()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&v| v <= MAX_AGE_LIMIT)
        .ok_or_else(|| format!("max_age {max_age:?} is not a number of seconds up to one year"))?;
    if mx.is_empty() && mode != Mode::None {
        return Err("no mx patterns".to_owned());
    }
    Ok(Policy {
        id: id.to_owned(),
        mode,
        mx,
        max_age,
        fetched,
        used: fetched,
    })
}

/// Where the cache lives and how the policy host is reached.
#[derive(Debug, Clone)]
pub struct MtaStsSettings {
    /// The cache file (`$queue_directory/mta-sts.json`).
    pub cache_file: PathBuf,
    /// The policy host's port: 443 (RFC 8461 §3.3); tests use their own.
    pub https_port: u16,
}

/// The cache file's contents.
#[derive(Deserialize)]
struct CacheFile {
    version: u32,
    policies: HashMap<String, Policy>,
}

/// The same, borrowed for writing.
#[derive(Serialize)]
struct CacheFileRef<'a> {
    version: u32,
    policies: &'a HashMap<String, Policy>,
}

/// What the cache holds: policies, and when each failed policy host may
/// be asked again.
#[derive(Default)]
struct Cache {
    policies: HashMap<String, Policy>,
    failed: HashMap<String, u64>,
    /// A write of the file is scheduled.
    write_pending: bool,
}

/// The MTA-STS resolver and policy cache, shared by every SMTP transport.
pub struct MtaSts {
    dns: Dns,
    http: reqwest::Client,
    cache: std::sync::Arc<Mutex<Cache>>,
    cache_file: PathBuf,
}

impl std::fmt::Debug for MtaSts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtaSts")
            .field("cache_file", &self.cache_file)
            .finish_non_exhaustive()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl MtaSts {
    /// Reads the cache file (a missing or unreadable one is an empty cache,
    /// logged) and prepares the HTTPS client.
    pub(crate) fn open(settings: &MtaStsSettings, dns: Dns, trust: &Trust) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(trust.verifying_config())
            .dns_resolver(std::sync::Arc::new(PolicyHostResolver {
                dns: dns.clone(),
                port: settings.https_port,
            }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(true)
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("towerpost/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("MTA-STS HTTPS client: {e}"))?;
        let cache = match towerpost_config::check_file(&settings.cache_file)
            .and_then(|()| std::fs::read(&settings.cache_file))
        {
            Ok(bytes) => match serde_json::from_slice::<CacheFile>(&bytes) {
                Ok(file) if file.version == CACHE_VERSION => file.policies,
                Ok(file) => {
                    tracing::warn!(target: "towerpost::smtp",
                        "{}: MTA-STS cache version {} is not {CACHE_VERSION}; starting empty",
                        settings.cache_file.display(), file.version);
                    HashMap::new()
                }
                Err(e) => {
                    tracing::warn!(target: "towerpost::smtp",
                        "{}: damaged MTA-STS cache ({e}); starting empty",
                        settings.cache_file.display());
                    HashMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => {
                tracing::warn!(target: "towerpost::smtp",
                    "{}: cannot read the MTA-STS cache ({e}); starting empty",
                    settings.cache_file.display());
                HashMap::new()
            }
        };
        Ok(MtaSts {
            dns,
            http,
            cache: std::sync::Arc::new(Mutex::new(Cache {
                policies: cache,
                ..Cache::default()
            })),
            cache_file: settings.cache_file.clone(),
        })
    }

    /// The policy that applies to `domain` now, if any (a `none` policy is
    /// returned too; it means no policy).
    pub(crate) async fn policy(&self, domain: &str) -> Option<Policy> {
        let now = now();
        let (cached, may_fetch) = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let cached = cache
                .policies
                .get_mut(domain)
                .filter(|p| p.expires() > now)
                .map(|p| {
                    p.used = now;
                    p.clone()
                });
            let may_fetch = cache.failed.get(domain).is_none_or(|&until| until <= now);
            (cached, may_fetch)
        };
        let id = match self.dns.txt(&format!("_mta-sts.{domain}")).await {
            Ok(records) => record_id(&records),
            Err(e) => {
                tracing::info!(target: "towerpost::smtp",
                    "MTA-STS record lookup for {domain} failed: {e}");
                None
            }
        };
        // No record (or no answer): a cached policy stays in force until
        // it expires (§5.1); an attacker who blocks DNS gains nothing.
        let Some(id) = id else {
            return cached;
        };
        if let Some(c) = &cached
            && c.id == id
            && !c.needs_refresh(now)
        {
            return cached;
        }
        if !may_fetch {
            return cached;
        }
        match self.fetch(domain, &id, now).await {
            Ok(policy) => {
                tracing::info!(target: "towerpost::smtp",
                    "MTA-STS policy for {domain}: {}", policy.summary());
                self.store(domain, policy.clone());
                Some(policy)
            }
            Err(e) => {
                tracing::warn!(target: "towerpost::smtp",
                    "MTA-STS policy fetch for {domain} failed: {e}{}",
                    if cached.is_some() { "; using the cached policy" } else { "" });
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                cache.failed.retain(|_, until| *until > now);
                if cache.failed.len() < CACHE_LIMIT {
                    cache
                        .failed
                        .insert(domain.to_owned(), now + RETRY_FETCH_AFTER);
                }
                cached
            }
        }
    }

    async fn fetch(&self, domain: &str, id: &str, now: u64) -> Result<Policy, String> {
        let url = format!("https://mta-sts.{domain}/.well-known/mta-sts.txt");
        let mut response = self.http.get(&url).send().await.map_err(|e| {
            // reqwest's top-level text hides the cause (certificate, DNS).
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        })?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("{url}: HTTP status {}", response.status()));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain"))
        {
            return Err(format!(
                "{url}: media type {content_type:?}, not text/plain"
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > POLICY_SIZE_LIMIT {
                return Err(format!(
                    "{url}: policy larger than {POLICY_SIZE_LIMIT} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body).map_err(|_| format!("{url}: not UTF-8"))?;
        parse_policy(&text, id, now).map_err(|e| format!("{url}: {e}"))
    }

    /// Caches a policy and schedules a write of the cache file. Writes
    /// are coalesced (at most one per second) and a failed one is logged:
    /// the in-memory cache still serves.
    fn store(&self, domain: &str, policy: Policy) {
        let write = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let now = now();
            cache.failed.remove(domain);
            cache.policies.retain(|_, p| p.expires() > now);
            if cache.policies.len() >= CACHE_LIMIT && !cache.policies.contains_key(domain) {
                // Least recently used first, so that domains nobody sends
                // to cannot push out the policies in use.
                let victim = cache
                    .policies
                    .iter()
                    .min_by_key(|(_, p)| p.used)
                    .map(|(d, _)| d.clone());
                if let Some(d) = victim {
                    cache.policies.remove(&d);
                }
            }
            cache.policies.insert(domain.to_owned(), policy);
            !std::mem::replace(&mut cache.write_pending, true)
        };
        if write {
            let cache = self.cache.clone();
            let path = self.cache_file.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(WRITE_DELAY_MS)).await;
                let written = tokio::task::spawn_blocking(move || {
                    let json = {
                        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                        cache.write_pending = false;
                        serde_json::to_vec(&CacheFileRef {
                            version: CACHE_VERSION,
                            policies: &cache.policies,
                        })
                    };
                    write_atomically(&path, &json.map_err(std::io::Error::other)?)
                        .map_err(|e| (path, e))
                        .map_err(|(path, e)| {
                            std::io::Error::other(format!("{}: {e}", path.display()))
                        })
                })
                .await;
                if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
                    tracing::warn!(target: "towerpost::smtp",
                        "cannot write the MTA-STS cache: {e}");
                }
            });
        }
    }
}

/// Writes `path` through a temporary file and a rename, so a crash leaves
/// the old or the new cache, never half of one.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_txt_record_gives_the_id_of_exactly_one_policy() {
        assert_eq!(
            record_id(&records(&["v=STSv1; id=20160831085700Z;"])),
            Some("20160831085700Z".into())
        );
        assert_eq!(
            record_id(&records(&["v=spf1 -all", "v=STSv1;id=abc"])),
            Some("abc".into())
        );
        for bad in [
            &["v=STSv1; id=a", "v=STSv1; id=b"][..], // two records
            &["v=STSv1;"],                           // no id
            &["v=STSv1; id=not-alnum"],
            &["v=STSv1; id=012345678901234567890123456789012"], // 33 chars
            &["v=STSv2; id=a"],
            &[],
        ] {
            assert_eq!(record_id(&records(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn policies_parse_per_rfc_8461() {
        let text = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n\
                    mx: *.Example.net\r\nmax_age: 604800\r\nextension: ignored\r\n";
        let p = parse_policy(text, "id1", 100).unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.mx, ["mail.example.com", "*.example.net"]);
        assert_eq!(p.max_age, 604_800);
        assert_eq!(p.expires(), 604_900);
        // LF line ends too.
        let p = parse_policy(
            "version: STSv1\nmode: testing\nmx: a.test\nmax_age: 5\n",
            "i",
            0,
        );
        assert_eq!(p.unwrap().mode, Mode::Testing);
        // none needs no mx.
        assert!(parse_policy("version: STSv1\nmode: none\nmax_age: 5\n", "i", 0).is_ok());
        for (bad, why) in [
            ("mode: enforce\nmx: a.test\nmax_age: 5\n", "version"),
            (
                "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 5\n",
                "mode",
            ),
            ("version: STSv1\nmode: enforce\nmax_age: 5\n", "no mx"),
            (
                "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557601\n",
                "max_age",
            ),
            ("version: STSv1\nmode: enforce\nmx: a.test\n", "max_age"),
            ("version: STSv1\ngarbage\n", "not a key"),
        ] {
            let e = parse_policy(bad, "i", 0).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn policies_are_bounded_and_refreshed_before_they_lapse() {
        let many: String = (0..=MX_PATTERN_LIMIT)
            .map(|i| format!("mx: m{i}.test\n"))
            .collect();
        let text = format!("version: STSv1\nmode: enforce\nmax_age: 86400\n{many}");
        assert!(
            parse_policy(&text, "i", 0)
                .unwrap_err()
                .contains("more than")
        );
        let p = parse_policy(
            "version: STSv1\nmode: enforce\nmx: a.test.\nmax_age: 604800\n",
            "i",
            0,
        )
        .unwrap();
        assert!(p.allows("a.test"), "a trailing dot in a pattern is ignored");
        // A week-long policy is fetched again after a day, a two-hour one
        // after an hour, although the id has not changed.
        assert!(!p.needs_refresh(REFRESH_AFTER - 1));
        assert!(p.needs_refresh(REFRESH_AFTER));
        let short = Policy { max_age: 7200, ..p };
        assert!(!short.needs_refresh(3599));
        assert!(short.needs_refresh(3600));
    }

    #[test]
    fn mx_patterns_match_one_label_wildcards() {
        let p = Policy {
            id: "i".into(),
            mode: Mode::Enforce,
            mx: vec!["mail.example.com".into(), "*.example.net".into()],
            max_age: 1,
            fetched: 0,
            used: 0,
        };
        assert!(p.allows("mail.example.com"));
        assert!(p.allows("MAIL.example.com."));
        assert!(p.allows("mx1.example.net"));
        assert!(!p.allows("a.b.example.net"));
        assert!(!p.allows("example.net"));
        assert!(!p.allows("other.example.com"));
    }
}
