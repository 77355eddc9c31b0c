//! Helpers shared by the configuration tests: write a file, load it, and
//! read a refusal with the temporary path replaced by `FILE`.
#![allow(dead_code)] // each test file uses its own subset

use std::io::Write;

use tempfile::NamedTempFile;
use towerpost_config::{Config, ConfigError};

/// A temporary configuration file with `contents`.
pub(crate) fn file(contents: &str) -> NamedTempFile {
    let mut file = NamedTempFile::new().expect("create a temporary file");
    file.write_all(contents.as_bytes()).expect("write it");
    file
}

/// Loads `contents` with the given environment instead of the process's.
pub(crate) fn load_env(contents: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let file = file(contents);
    Config::load_with_env(Some(file.path()), env)
}

/// Loads `contents` with an empty environment.
pub(crate) fn load(contents: &str) -> Result<Config, ConfigError> {
    load_env(contents, &[])
}

/// The refusal's text, with the temporary file's path replaced by `FILE`.
pub(crate) fn error_text_env(contents: &str, env: &[(&str, &str)]) -> String {
    let file = file(contents);
    let error = Config::load_with_env(Some(file.path()), env).expect_err("should fail");
    error
        .to_string()
        .replace(&file.path().display().to_string(), "FILE")
}

/// [`error_text_env`] with an empty environment.
pub(crate) fn error_text(contents: &str) -> String {
    error_text_env(contents, &[])
}
