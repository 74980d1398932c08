//! Credentials (InfluxDB tokens, HJ 212 passwords) as a type that cannot end up in a log line:
//! `Debug` and `Display` print a placeholder, and the value is only reachable through
//! [`Secret::expose`], which is easy to find in a review.
//!
//! Secrets never live in the site config itself, which is copied around and pasted into
//! tickets: a config names where to find one, as `token_file = "/etc/cemsd/influx.token"`
//! or `token_env = "CEMSD_INFLUX_TOKEN"` (see [`SecretSource`]).
//!
//! This is the one loader for every secret: InfluxDB tokens, HJ 212 passwords and MQTT broker
//! passwords are read, stripped and checked the same way.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::diagnostic::{Seg, SourceError, SourceText};

/// What `Debug` and `Display` print instead of the value.
pub const REDACTED: &str = "[redacted]";

/// A credential. Cloning is allowed (sinks reconnect with it); printing is not.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that puts it on the wire (an HTTP header, a login).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret from a file, as written by `echo TOKEN > file` or systemd's
    /// `LoadCredential=`: one trailing line break is not part of it.
    pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|e| SecretError::Unreadable {
            path: path.to_path_buf(),
            reason: e.kind().to_string(),
        })?;
        let value = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        if value.trim().is_empty() {
            return Err(SecretError::EmptyFile(path.to_path_buf()));
        }
        Ok(Secret(value.to_string()))
    }

    /// Reads a secret from an environment variable (e.g. from systemd's `Environment=` or a
    /// container's env), taken as it is.
    pub fn from_env(name: &str) -> Result<Secret, SecretError> {
        Secret::from_env_value(name, std::env::var_os(name))
    }

    /// [`Secret::from_env`] with the variable's value passed in, so it can be tested without
    /// touching the process environment.
    fn from_env_value(
        name: &str,
        value: Option<std::ffi::OsString>,
    ) -> Result<Secret, SecretError> {
        match value {
            None => Err(SecretError::EnvMissing(name.to_string())),
            Some(value) => match value.into_string() {
                Ok(value) if value.trim().is_empty() => {
                    Err(SecretError::EnvEmpty(name.to_string()))
                }
                Ok(value) => Ok(Secret(value)),
                Err(_) => Err(SecretError::EnvNotUnicode(name.to_string())),
            },
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Where a config says a secret is: exactly one of `token_file` or `token_env`, written
/// flattened into the section that needs it (`#[serde(flatten)] token: SecretSource`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SecretKeys")]
pub enum SecretSource {
    /// Relative to the config file.
    File(PathBuf),
    Env(String),
}

/// The keys as written, before checking that exactly one is there.
#[derive(Deserialize)]
struct SecretKeys {
    token_file: Option<PathBuf>,
    token_env: Option<String>,
}

impl TryFrom<SecretKeys> for SecretSource {
    type Error = String;
    fn try_from(keys: SecretKeys) -> Result<Self, Self::Error> {
        match (keys.token_file, keys.token_env) {
            (Some(file), None) => Ok(SecretSource::File(file)),
            (None, Some(var)) => Ok(SecretSource::Env(var)),
            (Some(_), Some(_)) => Err("set token_file or token_env, not both".into()),
            (None, None) => Err(
                "missing token_file or token_env: name a file holding the token, or an environment variable"
                    .into(),
            ),
        }
    }
}

impl SecretSource {
    /// The source a pair of config keys names (`token_file`/`token_env`,
    /// `password_file`/`password_env`, `file`/`env`); `None` unless exactly one is set.
    pub fn from_keys(file: Option<&PathBuf>, env: Option<&String>) -> Option<SecretSource> {
        match (file, env) {
            (Some(file), None) => Some(SecretSource::File(file.clone())),
            (None, Some(env)) => Some(SecretSource::Env(env.clone())),
            _ => None,
        }
    }

    /// Loads the secret; `config_path` anchors a relative `token_file`.
    pub fn load(&self, config_path: &Path) -> Result<Secret, SecretError> {
        match self {
            SecretSource::File(path) => {
                Secret::from_file(&crate::config::relative_to(config_path, path))
            }
            SecretSource::Env(var) => Secret::from_env(var),
        }
    }
}

/// Where an HJ 212 password (PW) is: `password = { file = "…" }` (relative to the config
/// file) or `password = { env = "VAR" }`, for the uplinks and the listener's loggers alike.
/// Both keys are optional to serde so that `validate` can say precisely what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSource {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
}

impl PasswordSource {
    /// `None` until `validate` has passed.
    pub fn source(&self) -> Option<SecretSource> {
        SecretSource::from_keys(self.file.as_ref(), self.env.as_ref())
    }

    /// Exactly one place, and a usable variable name; `at` is this key's path in the config.
    pub fn validate(&self, src: &SourceText, at: &[Seg]) -> Result<(), SourceError> {
        match (&self.file, &self.env) {
            (None, None) => Err(src.error_at_path(
                at,
                "no password source",
                Some("write password = { file = \"/etc/cemsd/hj212.pw\" } or { env = \"CEMSD_HJ212_PW\" }; passwords are never written in the config".into()),
            )),
            (Some(_), Some(_)) => Err(src.error_at_path(
                at,
                "password names both a file and an environment variable",
                Some("keep one of them".into()),
            )),
            (None, Some(var)) if var.is_empty() || var.contains('=') => Err(src.error_at_path(
                at,
                format!("{var:?} is not an environment variable name"),
                Some("write e.g. { env = \"CEMSD_HJ212_PW\" }".into()),
            )),
            _ => Ok(()),
        }
    }
}

/// Why a secret could not be loaded. Never carries the secret or any part of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("{}: cannot read the secret: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}: the secret file is empty", .0.display())]
    EmptyFile(PathBuf),
    #[error("environment variable {0} is not set\n  help: set it in the service's environment, e.g. a systemd drop-in with Environment= or EnvironmentFile=")]
    EnvMissing(String),
    #[error("environment variable {0} is empty")]
    EnvEmpty(String),
    #[error("environment variable {0} is not valid UTF-8")]
    EnvNotUnicode(String),
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    const TOKEN: &str = "s3cr3t-Token_9f8e7d";

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new(TOKEN);
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        // Inside a derived Debug of a bigger struct, too.
        #[derive(Debug)]
        #[allow(dead_code)] // only printed
        struct Sink {
            url: &'static str,
            token: Secret,
        }
        let sink = Sink {
            url: "http://127.0.0.1:8086",
            token: secret.clone(),
        };
        let printed = format!("{sink:?} {sink:#?}");
        assert!(!printed.contains(TOKEN), "leaked in {printed}");
        assert!(printed.contains("http://127.0.0.1:8086"));
        assert_eq!(secret.expose(), TOKEN);
    }

    /// A writer the log subscriber formats into, so the test can read every line.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn log_lines_in_both_formats_carry_the_placeholder_not_the_value() {
        let secret = Secret::new(TOKEN);
        for json in [false, true] {
            let out = Captured::default();
            let builder = tracing_subscriber::fmt()
                .with_writer(out.clone())
                .with_ansi(false);
            let log = |secret: &Secret| {
                tracing::info!(token = %secret, "connecting with {secret}");
                tracing::warn!(token = ?secret, "retrying with {secret:?}");
                let span = tracing::info_span!("sink", token = %secret);
                let _inside = span.enter();
                tracing::error!("failed");
            };
            if json {
                tracing::subscriber::with_default(builder.json().finish(), || log(&secret));
            } else {
                tracing::subscriber::with_default(builder.finish(), || log(&secret));
            }
            let text = String::from_utf8_lossy(&out.0.lock().unwrap_or_else(|e| e.into_inner()))
                .to_string();
            assert_eq!(text.lines().count(), 3, "json={json}: {text}");
            assert!(!text.contains(TOKEN), "json={json}: leaked in {text}");
            assert!(
                text.matches("[redacted]").count() >= 5,
                "json={json}: {text}"
            );
        }
    }

    #[test]
    fn from_file_drops_one_line_break_and_errors_name_the_file_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let path = dir.path().join("influx.token");
        std::fs::write(&path, format!("{TOKEN}\n")).unwrap_or_else(|e| panic!("write: {e}"));
        let secret = Secret::from_file(&path);
        assert_eq!(secret.as_ref().map(Secret::expose), Ok(TOKEN));

        std::fs::write(&path, format!("{TOKEN}\r\n")).unwrap_or_else(|e| panic!("write: {e}"));
        assert_eq!(Secret::from_file(&path).map(|s| s.0), Ok(TOKEN.to_string()));

        std::fs::write(&path, " \n").unwrap_or_else(|e| panic!("write: {e}"));
        assert_eq!(
            Secret::from_file(&path),
            Err(SecretError::EmptyFile(path.clone()))
        );

        let missing = dir.path().join("nope.token");
        let err = Secret::from_file(&missing).err();
        assert_eq!(
            err.as_ref().map(|e| e.to_string()),
            Some(format!(
                "{}: cannot read the secret: entity not found",
                missing.display()
            ))
        );
    }

    /// The influx token loader trimmed all surrounding whitespace and the MQTT password loader
    /// accepted an empty file or variable; every secret now follows the rule above.
    #[test]
    fn only_one_line_break_is_dropped_and_blank_secrets_are_errors_for_every_source() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let path = dir.path().join("secret");
        std::fs::write(&path, format!(" {TOKEN} \n")).unwrap_or_else(|e| panic!("write: {e}"));
        assert_eq!(
            Secret::from_file(&path).map(|s| s.0),
            Ok(format!(" {TOKEN} "))
        );
        std::fs::write(&path, format!("{TOKEN}\n\n")).unwrap_or_else(|e| panic!("write: {e}"));
        assert_eq!(
            Secret::from_file(&path).map(|s| s.0),
            Ok(format!("{TOKEN}\n"))
        );
        std::fs::write(&path, "").unwrap_or_else(|e| panic!("write: {e}"));
        assert_eq!(
            Secret::from_file(&path),
            Err(SecretError::EmptyFile(path.clone()))
        );
        assert_eq!(
            Secret::from_env_value("CEMSD_TOKEN", Some("".into())),
            Err(SecretError::EnvEmpty("CEMSD_TOKEN".into()))
        );
        assert_eq!(
            Secret::from_env_value("CEMSD_TOKEN", Some(format!(" {TOKEN}\n").into())).map(|s| s.0),
            Ok(format!(" {TOKEN}\n"))
        );
    }

    #[test]
    fn from_keys_names_a_source_only_when_exactly_one_key_is_set() {
        let file = PathBuf::from("influx.token");
        let var = "CEMSD_TOKEN".to_string();
        assert_eq!(
            SecretSource::from_keys(Some(&file), None),
            Some(SecretSource::File(file.clone()))
        );
        assert_eq!(
            SecretSource::from_keys(None, Some(&var)),
            Some(SecretSource::Env(var.clone()))
        );
        assert_eq!(SecretSource::from_keys(Some(&file), Some(&var)), None);
        assert_eq!(SecretSource::from_keys(None, None), None);
    }

    #[test]
    fn from_env_value_tells_missing_empty_and_non_unicode_apart() {
        use std::os::unix::ffi::OsStringExt;
        let ok = Secret::from_env_value("CEMSD_TOKEN", Some(TOKEN.into()));
        assert_eq!(ok.map(|s| s.0), Ok(TOKEN.to_string()));
        assert_eq!(
            Secret::from_env_value("CEMSD_TOKEN", None),
            Err(SecretError::EnvMissing("CEMSD_TOKEN".into()))
        );
        assert_eq!(
            Secret::from_env_value("CEMSD_TOKEN", Some("  ".into())),
            Err(SecretError::EnvEmpty("CEMSD_TOKEN".into()))
        );
        assert_eq!(
            Secret::from_env_value(
                "CEMSD_TOKEN",
                Some(std::ffi::OsString::from_vec(vec![0xff, 0xfe]))
            ),
            Err(SecretError::EnvNotUnicode("CEMSD_TOKEN".into()))
        );
    }

    #[test]
    fn a_config_section_names_the_source_and_a_relative_file_follows_the_config() {
        #[derive(Debug, Deserialize)]
        struct Sink {
            #[allow(dead_code)] // only parsed
            url: String,
            #[serde(flatten)]
            token: SecretSource,
        }
        let file: Result<Sink, _> =
            toml::from_str("url = \"http://127.0.0.1:8086\"\ntoken_file = \"influx.token\"\n");
        let env: Result<Sink, _> =
            toml::from_str("url = \"http://127.0.0.1:8086\"\ntoken_env = \"CEMSD_TOKEN\"\n");
        assert_eq!(
            file.map(|s| s.token).ok(),
            Some(SecretSource::File("influx.token".into()))
        );
        assert_eq!(
            env.map(|s| s.token).ok(),
            Some(SecretSource::Env("CEMSD_TOKEN".into()))
        );
        let both: Result<Sink, _> = toml::from_str(
            "url = \"u\"\ntoken_file = \"influx.token\"\ntoken_env = \"CEMSD_TOKEN\"\n",
        );
        let neither: Result<Sink, _> = toml::from_str("url = \"u\"\n");
        let message = |r: Result<Sink, toml::de::Error>| r.err().map(|e| e.message().to_string());
        assert_eq!(
            message(both).as_deref(),
            Some("set token_file or token_env, not both")
        );
        assert!(
            message(neither).is_some_and(|m| m.starts_with("missing token_file or token_env")),
            "a section without a secret is an error"
        );

        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        std::fs::write(dir.path().join("influx.token"), TOKEN)
            .unwrap_or_else(|e| panic!("write: {e}"));
        let source = SecretSource::File("influx.token".into());
        let loaded = source.load(&dir.path().join("site.toml"));
        assert_eq!(loaded.map(|s| s.0), Ok(TOKEN.to_string()));
    }
}
