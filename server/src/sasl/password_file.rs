//! The password file: `user:$argon2id$…` lines, managed by `towerpost
//! passwd` and read by the server.
//!
//! Each line is a user name, a colon and a PHC string (which names its
//! algorithm and parameters, so a file stays readable when they change);
//! empty lines and `#` comments are kept as they are when the file is
//! rewritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};

/// The first line of a file written by `towerpost passwd`.
const HEADER: &str = "# towerpost password file: user:argon2id-hash (see `towerpost passwd`)";

/// A problem with the password file.
#[derive(Debug, thiserror::Error)]
pub enum PasswordFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not `user:hash`.
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A user name that cannot be stored.
    #[error("invalid user name {0:?}: use printable characters without ':' or spaces")]
    BadUser(String),
    /// Hashing failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// One line of the file.
#[derive(Debug, Clone)]
enum Line {
    /// A comment or empty line, kept verbatim.
    Other(String),
    /// A user and the PHC string of their password.
    User { name: String, hash: String },
}

/// The password file in memory.
#[derive(Debug, Clone)]
pub struct PasswordFile {
    path: PathBuf,
    lines: Vec<Line>,
}

/// Hashes `password` with argon2id and a random salt (the `argon2`
/// crate's default parameters, OWASP's recommendation).
pub fn hash_password(password: &str) -> Result<String, PasswordFileError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordFileError::Hash(e.to_string()))
}

fn valid_user(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && c != ':')
}

impl PasswordFile {
    /// Reads the file at `path`; a file that does not exist is empty.
    pub fn load(path: &Path) -> Result<PasswordFile, PasswordFileError> {
        match towerpost_config::read_text(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PasswordFile {
                path: path.to_owned(),
                lines: Vec::new(),
            }),
            Err(source) => Err(PasswordFileError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses `text` as the file at `path`.
    pub fn parse(path: &Path, text: &str) -> Result<PasswordFile, PasswordFileError> {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                lines.push(Line::Other(raw.to_owned()));
                continue;
            }
            let syntax = |message: String| PasswordFileError::Syntax {
                path: path.to_owned(),
                line: i + 1,
                message,
            };
            let Some((name, hash)) = trimmed.split_once(':') else {
                return Err(syntax("expected user:hash".into()));
            };
            if !valid_user(name) {
                return Err(syntax(format!("invalid user name {name:?}")));
            }
            if let Err(e) = PasswordHash::new(hash) {
                return Err(syntax(format!(
                    "the hash of {name} is not a PHC string ({e}); set it again with \
                     `towerpost passwd add {name}`"
                )));
            }
            if lines
                .iter()
                .any(|l| matches!(l, Line::User { name: n, .. } if n == name))
            {
                return Err(syntax(format!("user {name} appears twice")));
            }
            lines.push(Line::User {
                name: name.to_owned(),
                hash: hash.to_owned(),
            });
        }
        Ok(PasswordFile {
            path: path.to_owned(),
            lines,
        })
    }

    /// The user names, in file order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| match l {
            Line::User { name, .. } => Some(name.as_str()),
            Line::Other(_) => None,
        })
    }

    /// The PHC string of `user`'s password.
    pub fn hash_of(&self, user: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| match l {
            Line::User { name, hash } if name == user => Some(hash.as_str()),
            _ => None,
        })
    }

    /// Sets `user`'s password (adding the user if new); true if the user
    /// existed.
    pub fn set(&mut self, user: &str, password: &str) -> Result<bool, PasswordFileError> {
        if !valid_user(user) {
            return Err(PasswordFileError::BadUser(user.to_owned()));
        }
        let new_hash = hash_password(password)?;
        for line in &mut self.lines {
            if let Line::User { name, hash } = line
                && name == user
            {
                *hash = new_hash;
                return Ok(true);
            }
        }
        self.lines.push(Line::User {
            name: user.to_owned(),
            hash: new_hash,
        });
        Ok(false)
    }

    /// Removes `user`; false if there was no such user.
    pub fn remove(&mut self, user: &str) -> bool {
        let before = self.lines.len();
        self.lines
            .retain(|l| !matches!(l, Line::User { name, .. } if name == user));
        self.lines.len() != before
    }

    /// Writes the file: a temporary file in the same directory, fsynced,
    /// then renamed over the old one, so that the server never reads half
    /// a file. Mode 0640: the hashes are secrets too.
    pub fn save(&self) -> Result<(), PasswordFileError> {
        let io = |source| PasswordFileError::Io {
            path: self.path.clone(),
            source,
        };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut text = String::new();
        if !matches!(self.lines.first(), Some(Line::Other(l)) if l.starts_with("# towerpost")) {
            text.push_str(HEADER);
            text.push('\n');
        }
        for line in &self.lines {
            match line {
                Line::Other(l) => text.push_str(l),
                Line::User { name, hash } => {
                    text.push_str(name);
                    text.push(':');
                    text.push_str(hash);
                }
            }
            text.push('\n');
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".passwd")
            .tempfile_in(&dir)
            .map_err(io)?;
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o640))
            .map_err(io)?;
        // Keep the old file's owner and group, so that the server (which
        // reads it as its own user) still can after root rewrote it.
        if let Ok(old) = std::fs::metadata(&self.path) {
            std::os::unix::fs::fchown(tmp.as_file(), Some(old.uid()), Some(old.gid()))
                .map_err(io)?;
        }
        tmp.write_all(text.as_bytes()).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&self.path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_added_changed_removed_and_comments_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        let mut file = PasswordFile::load(&path).unwrap();
        assert!(!file.set("alice", "one").unwrap());
        assert!(!file.set("bob@example.org", "two").unwrap());
        file.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# towerpost password file"), "{text}");
        assert!(!text.contains("one"), "the password itself is never stored");
        let mut file = PasswordFile::load(&path).unwrap();
        let old = file.hash_of("alice").unwrap().to_owned();
        assert!(file.set("alice", "three").unwrap());
        assert_ne!(file.hash_of("alice").unwrap(), old);
        assert!(file.remove("bob@example.org"));
        assert!(!file.remove("nobody"));
        file.save().unwrap();
        let mut file = PasswordFile::load(&path).unwrap();
        assert_eq!(file.users().collect::<Vec<_>>(), ["alice"]);
        assert!(file.set("bad name", "x").is_err());
    }

    #[test]
    fn a_damaged_line_names_file_and_line() {
        let error = PasswordFile::parse(Path::new("p"), "# c\nalice:plaintext\n").unwrap_err();
        assert!(
            error.to_string().starts_with("p:2: the hash of alice"),
            "{error}"
        );
    }
}
