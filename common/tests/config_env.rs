//! `.env` handling: found in the working directory or above, never overriding the real environment.
//!
//! Each test builds a directory tree in a tempdir and passes a map as the
//! "real" environment, so nothing here reads or changes the process
//! environment (tests run in parallel threads, and `set_var` is `unsafe` in
//! Rust 2024 for exactly that reason).

use std::collections::HashMap;
use std::fs;

use common::config::Config;
use common::error::Error;

/// A lookup over fixed pairs: the "real" environment of a test.
fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn dotenv_in_a_parent_directory_is_found() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join(".env"), "GEMINI_API_KEY=from-file\n").unwrap();
    let nested = root.path().join("a/b");
    fs::create_dir_all(&nested).unwrap();
    let config = Config::from_env_in(&nested, env(&[])).unwrap();
    assert_eq!(config.api_key.unwrap().expose(), "from-file");
    assert_eq!(config.key_source, Some("GEMINI_API_KEY"));
    assert_eq!(config.dotenv, Some(root.path().join(".env")));
}

#[test]
fn the_real_environment_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(".env"),
        "GOOGLE_API_KEY=file-key\nGOOGLE_GEMINI_BASE_URL=http://127.0.0.1:1\n",
    )
    .unwrap();
    let config = Config::from_env_in(dir.path(), env(&[("GOOGLE_API_KEY", "env-key")])).unwrap();
    assert_eq!(config.api_key.unwrap().expose(), "env-key");
    // A variable only the file sets still comes from the file.
    assert_eq!(config.base_url.unwrap().as_str(), "http://127.0.0.1:1/");
}

#[test]
fn an_empty_real_variable_does_not_hide_the_file() {
    // Empty counts as unset, in either layer.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(".env"), "GEMINI_API_KEY=file-key\n").unwrap();
    let config = Config::from_env_in(dir.path(), env(&[("GEMINI_API_KEY", "")])).unwrap();
    assert_eq!(config.api_key.unwrap().expose(), "file-key");
}

#[test]
fn precedence_spans_both_layers() {
    // GOOGLE_API_KEY in the file still beats GEMINI_API_KEY in the environment, as the SDKs
    // see one merged environment.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(".env"), "GOOGLE_API_KEY=google\n").unwrap();
    let config = Config::from_env_in(dir.path(), env(&[("GEMINI_API_KEY", "gemini")])).unwrap();
    assert_eq!(config.api_key.unwrap().expose(), "google");
    assert_eq!(config.notices.len(), 1);
}

#[test]
fn no_dotenv_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_env_in(dir.path(), env(&[])).unwrap();
    // (A .env above the tempdir, e.g. in /tmp, would be found; the key check below does not
    // depend on there being none.)
    assert!(config.api_key.is_none() || config.dotenv.is_some());
}

#[test]
fn a_malformed_dotenv_is_a_clear_error_that_does_not_echo_the_key() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(".env"),
        "GEMINI_API_KEY='sekrit-never-closed\n",
    )
    .unwrap();
    let err = Config::from_env_in(dir.path(), env(&[])).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(
        text.contains(".env") && text.contains("GEMINI_API_KEY"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
    assert!(
        !text.contains("sekrit"),
        "the key must not be echoed: {text}"
    );
}

#[test]
fn an_unreadable_dotenv_is_a_clear_error() {
    // A directory named .env cannot be read as a file: `is_file` skips it, so
    // make the file itself unreadable instead when permissions allow.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    fs::write(&path, [0xff, 0xfe, b'=', b'\n']).unwrap();
    let result = Config::from_env_in(dir.path(), env(&[]));
    // Invalid UTF-8 is reported, not a panic.
    assert!(matches!(result, Err(Error::Config(_))), "{result:?}");
}
