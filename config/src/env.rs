//! The figment provider of `TOWERPOST_*` environment variables.
//!
//! It is built from an explicit list of (name, value) pairs so that tests can
//! pass their own environment; [`crate::Config::load`] passes the process
//! environment.

use std::collections::BTreeMap;

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

use crate::{CONFIG_ENV_VAR, ENV_PREFIX};

/// The metadata name of the environment provider.
pub(crate) const ENV_NAME: &str = "environment variable";

/// The `TOWERPOST_*` variables, by key (the lower-cased name without the
/// prefix).
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvVars {
    /// key → (variable name, value)
    vars: BTreeMap<String, (String, String)>,
}

impl EnvVars {
    /// Keeps the variables whose name starts with `TOWERPOST_` (in any case),
    /// except `TOWERPOST_CONFIG`, which names the file.
    pub(crate) fn new<N: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut vars = BTreeMap::new();
        for (name, value) in pairs {
            let name = name.as_ref();
            let Some(prefix) = name.get(..ENV_PREFIX.len()) else {
                continue;
            };
            if !prefix.eq_ignore_ascii_case(ENV_PREFIX)
                || name.eq_ignore_ascii_case(CONFIG_ENV_VAR)
                || name.len() == ENV_PREFIX.len()
            {
                continue;
            }
            // Variable names are upper case; a key spelled with capitals
            // (`smtp_tls_CAfile`, as in Postfix) keeps its spelling.
            let key = name[ENV_PREFIX.len()..].to_ascii_lowercase();
            let key = crate::keys::keys()
                .iter()
                .find(|k| k.eq_ignore_ascii_case(&key))
                .map_or(key, |k| (*k).to_owned());
            vars.insert(key, (name.to_owned(), value.as_ref().to_owned()));
        }
        EnvVars { vars }
    }

    /// The name of the variable that set `key`, if any.
    pub(crate) fn var_name(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(|(name, _)| name.as_str())
    }
}

impl Provider for EnvVars {
    fn metadata(&self) -> Metadata {
        Metadata::named(ENV_NAME).interpolater(|_: &Profile, keys: &[&str]| {
            format!("{ENV_PREFIX}{}", keys.join("_").to_ascii_uppercase())
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict = self
            .vars
            .iter()
            .map(|(key, (_, value))| (key.clone(), parse(key, value)))
            .collect();
        Ok(Profile::Default.collect(dict))
    }
}

/// Environment values are strings: every key accepts strings in Postfix
/// syntax. Only `listener` is parsed as structured data
/// (`[{name = "smtp", address = "127.0.0.1:25"}]`), since it cannot be
/// written as a plain string.
fn parse(key: &str, value: &str) -> Value {
    if key == "listener" {
        let parsed: Value = value.parse().unwrap_or_else(|e| match e {});
        if matches!(parsed, Value::Dict(..) | Value::Array(..)) {
            return parsed;
        }
    }
    Value::from(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_prefixed_variables_are_kept_and_config_is_ignored() {
        let env = EnvVars::new([
            ("TOWERPOST_MESSAGE_SIZE_LIMIT", "5000"),
            ("TOWERPOST_CONFIG", "/etc/towerpost.toml"),
            ("TOWERPOST_", "x"),
            ("PATH", "/bin"),
            ("towerpost_mail_name", "relay"),
            ("TOWERPOST_SMTP_TLS_CAFILE", "/etc/ssl/ca.pem"),
        ]);
        let keys: Vec<&str> = env.vars.keys().map(String::as_str).collect();
        assert_eq!(keys, ["mail_name", "message_size_limit", "smtp_tls_CAfile"]);
        assert_eq!(
            env.var_name("message_size_limit"),
            Some("TOWERPOST_MESSAGE_SIZE_LIMIT")
        );
    }

    #[test]
    fn values_stay_strings_except_listener_tables() {
        assert_eq!(parse("message_size_limit", "5000").as_str(), Some("5000"));
        assert_eq!(parse("mynetworks", "[::1]/128").as_str(), Some("[::1]/128"));
        assert!(matches!(
            parse("listener", r#"[{name = "a", address = "127.0.0.1:25"}]"#),
            Value::Array(..)
        ));
    }
}
