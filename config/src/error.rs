//! The error type of configuration loading.

use std::fmt;
use std::path::PathBuf;

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The built-in defaults.
    Default,
    /// The configuration file, as named by the caller.
    File(PathBuf),
    /// An environment variable (its full name).
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("built-in default"),
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// The kind of one problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProblemKind {
    /// The file could not be read or parsed.
    File,
    /// A key that towerpost does not know.
    UnknownKey,
    /// A value of the wrong type or out of range.
    InvalidValue,
    /// A `$name` reference that cannot be expanded.
    Reference,
}

/// One problem found while loading the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) kind: ProblemKind,
    pub(crate) origin: Origin,
    /// The key the problem is about, if any.
    pub(crate) key: Option<String>,
    /// A description; it does not repeat the origin, nor the key unless
    /// `key_in_message`.
    pub(crate) message: String,
    /// The message names the key itself (`listener 'smtp': ...`).
    pub(crate) key_in_message: bool,
}

impl Problem {
    /// A problem about the value of `key`.
    pub(crate) fn value(origin: &Origin, key: &str, message: impl Into<String>) -> Self {
        Problem {
            kind: ProblemKind::InvalidValue,
            origin: origin.clone(),
            key: Some(key.to_owned()),
            message: message.into(),
            key_in_message: false,
        }
    }

    /// A key that towerpost does not know, such as `transport.NAME.key`;
    /// `hint` follows the message (` (did you mean ...?)`) or is empty.
    pub(crate) fn unknown_key(origin: &Origin, key: String, hint: impl AsRef<str>) -> Self {
        Problem {
            kind: ProblemKind::UnknownKey,
            origin: origin.clone(),
            message: format!("unknown key '{key}'{}", hint.as_ref()),
            key: Some(key),
            key_in_message: false,
        }
    }

    /// A problem about one `[[listener]]` table; `message` starts with
    /// `listener 'name'`.
    pub(crate) fn listener(origin: &Origin, message: impl Into<String>) -> Self {
        Problem {
            key_in_message: true,
            ..Problem::value(origin, "listener", message)
        }
    }

    /// A problem with a `$name` reference in the value of `key`.
    pub(crate) fn reference(origin: &Origin, key: &str, message: impl Into<String>) -> Self {
        Problem {
            kind: ProblemKind::Reference,
            ..Problem::value(origin, key, message)
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if let (Some(key), ProblemKind::InvalidValue | ProblemKind::Reference, false) =
            (&self.key, self.kind, self.key_in_message)
        {
            write!(f, "key '{key}': ")?;
        }
        // Multi-line messages (TOML syntax errors) are indented so that each
        // problem still starts at the beginning of a line.
        let mut lines = self.message.lines();
        if let Some(first) = lines.next() {
            f.write_str(first)?;
        }
        for line in lines {
            write!(f, "\n    {line}")?;
        }
        Ok(())
    }
}

/// The configuration could not be loaded.
///
/// It lists every problem found, each naming where the offending value came
/// from (the file, `environment variable TOWERPOST_X` or `built-in default`),
/// the key, and what was expected. Its [`Display`](fmt::Display) output puts
/// each problem on its own line and is meant to be shown to the user as is,
/// for example:
///
/// ```text
/// /etc/towerpost.toml: unknown key 'smtpd_recipent_limit' (did you mean 'smtpd_recipient_limit'?)
/// /etc/towerpost.toml: key 'smtpd_timeout': expected a duration with a unit such as "300s" or "5m", found "300"
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<Problem>,
}

impl ConfigError {
    /// Wraps a non-empty list of problems.
    pub(crate) fn new(problems: Vec<Problem>) -> Self {
        debug_assert!(!problems.is_empty());
        ConfigError { problems }
    }

    /// Each problem as one message (the lines of the `Display` output; a
    /// TOML syntax error may span several lines).
    pub fn problems(&self) -> impl Iterator<Item = String> + '_ {
        self.problems.iter().map(ToString::to_string)
    }

    /// The keys named by the problems, in order, without repetition.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        for key in self.problems.iter().filter_map(|p| p.key.as_deref()) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    /// Whether the configuration file could not be read or is not valid TOML.
    pub fn is_file_error(&self) -> bool {
        self.has(ProblemKind::File)
    }

    /// Whether some key is not a known configuration key.
    pub fn is_unknown_key(&self) -> bool {
        self.has(ProblemKind::UnknownKey)
    }

    /// Whether some value has the wrong type, is out of range or conflicts
    /// with another setting.
    pub fn is_invalid_value(&self) -> bool {
        self.has(ProblemKind::InvalidValue)
    }

    /// Whether some `$name` reference could not be expanded (unknown key,
    /// cycle or bad syntax).
    pub fn is_bad_reference(&self) -> bool {
        self.has(ProblemKind::Reference)
    }

    fn has(&self, kind: ProblemKind) -> bool {
        self.problems.iter().any(|p| p.kind == kind)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
