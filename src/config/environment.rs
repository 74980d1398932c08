//! Checks of a valid config against the machine it is to run on, which `parse` cannot make
//! because they depend on the process, not the file: whether the open-files limit holds the
//! HJ 212 listener's connections, and whether secret files are where a systemd service can
//! read them. `cemsd check` and `cemsd run` both make them, with file:line:col like every
//! other config error.

use std::path::{Path, PathBuf};

use crate::config::diagnostic::{Seg, SourceError, SourceText};
use crate::config::{relative_to, ConfigError, Loaded, SiteConfig};

/// What the checks need to know about the process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// The open-files limit in force (after raising the soft limit to the hard one).
    pub open_files_limit: Option<u64>,
    /// Started by systemd (`INVOCATION_ID` is set for every unit it runs).
    pub under_systemd: bool,
    /// `$CREDENTIALS_DIRECTORY`: where `LoadCredential=` put the unit's secrets.
    pub credentials_dir: Option<PathBuf>,
}

impl Environment {
    /// This process's environment, with the given open-files limit.
    pub fn current(open_files_limit: Option<u64>) -> Environment {
        Environment {
            open_files_limit,
            under_systemd: std::env::var_os("INVOCATION_ID").is_some(),
            credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
        }
    }
}

/// Files the daemon keeps open beside the listener's connections: the store and its
/// journal, readers, the runtime, the HTTP server and its clients, log and capture files.
const BASE_FILES: u64 = 64;
/// Per device, bus, MQTT source, sink and serial port: a connection or port, and a spare
/// for the moment a reconnect opens the new one before the old one is closed.
const FILES_PER_ENDPOINT: u64 = 2;

/// Open files the daemon needs with `config`, the listener's `max_connections` included.
pub fn files_needed(config: &SiteConfig) -> u64 {
    let listener = config.hj212_listener.as_ref();
    let endpoints = config.devices.len()
        + config.buses.len()
        + config.mqtt.len()
        + config.influx.len()
        + config.hj212.len()
        + listener.map_or(0, |l| l.serial.len());
    let connections = listener.map_or(0, |l| l.max_connections as u64);
    BASE_FILES + FILES_PER_ENDPOINT * endpoints as u64 + connections
}

/// Refuses a config whose listener cannot hold `max_connections` within the open-files
/// limit, and returns warnings about secret files a systemd service may not read.
pub fn check(loaded: &Loaded, env: &Environment) -> Result<Vec<SourceError>, ConfigError> {
    let text = std::fs::read_to_string(&loaded.path)
        .map_err(|e| ConfigError::Unreadable(loaded.path.clone(), e))?;
    let src = SourceText::new(&loaded.path, &text);
    open_files(&src, &loaded.config, env.open_files_limit)?;
    Ok(secret_files(&src, &loaded.config, &loaded.path, env))
}

fn open_files(
    src: &SourceText,
    config: &SiteConfig,
    limit: Option<u64>,
) -> Result<(), SourceError> {
    let (Some(listener), Some(limit)) = (&config.hj212_listener, limit) else {
        return Ok(());
    };
    let needed = files_needed(config);
    if needed <= limit {
        return Ok(());
    }
    let other = needed - listener.max_connections as u64;
    Err(src.error_at_path(
        &[Seg::Key("hj212_listener"), Seg::Key("max_connections")],
        format!(
            "max_connections = {} needs {needed} open files with the rest of this config, \
             but this process may open only {limit}; loggers over the limit would be locked out \
             with \"Too many open files\"",
            listener.max_connections
        ),
        Some(format!(
            "raise the limit (the shipped unit sets LimitNOFILE=65536; in a shell: ulimit -n), \
             or lower max_connections to at most {}",
            limit.saturating_sub(other)
        )),
    ))
}

/// Every secret file the config names, with the path of its key.
fn secret_file_keys(config: &SiteConfig) -> Vec<(Vec<Seg<'static>>, PathBuf)> {
    let mut out = Vec::new();
    for (i, sink) in config.influx.iter().enumerate() {
        if let Some(file) = &sink.token_file {
            let at = vec![Seg::Key("influx"), Seg::Index(i), Seg::Key("token_file")];
            out.push((at, file.clone()));
        }
    }
    for (i, sink) in config.hj212.iter().enumerate() {
        if let Some(file) = &sink.password.file {
            let at = vec![Seg::Key("hj212"), Seg::Index(i), Seg::Key("password")];
            out.push((at, file.clone()));
        }
    }
    for (i, source) in config.mqtt.iter().enumerate() {
        if let Some(file) = &source.password_file {
            let at = vec![Seg::Key("mqtt"), Seg::Index(i), Seg::Key("password_file")];
            out.push((at, file.clone()));
        }
    }
    if let Some(listener) = &config.hj212_listener {
        for (i, device) in listener.devices.iter().enumerate() {
            if let Some(file) = &device.password.file {
                let at = vec![
                    Seg::Key("hj212_listener"),
                    Seg::Key("device"),
                    Seg::Index(i),
                    Seg::Key("password"),
                ];
                out.push((at, file.clone()));
            }
        }
    }
    out
}

/// Under systemd the unit runs as a dynamic user without capabilities: it cannot read a
/// root-only file in /etc. `LoadCredential=` hands such a file to the service in
/// `$CREDENTIALS_DIRECTORY`; a secret file elsewhere is warned about.
fn secret_files(
    src: &SourceText,
    config: &SiteConfig,
    config_path: &Path,
    env: &Environment,
) -> Vec<SourceError> {
    if !env.under_systemd {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (at, file) in secret_file_keys(config) {
        let path = relative_to(config_path, &file);
        let inside = env
            .credentials_dir
            .as_deref()
            .is_some_and(|dir| path.starts_with(dir));
        if inside {
            continue;
        }
        let name = path
            .file_name()
            .map_or_else(|| "secret".into(), |n| n.to_string_lossy().into_owned());
        let place = match &env.credentials_dir {
            Some(dir) => format!("outside $CREDENTIALS_DIRECTORY ({})", dir.display()),
            None => {
                "and the unit passes no credentials ($CREDENTIALS_DIRECTORY is not set)".to_string()
            }
        };
        out.push(src.error_at_path(
            &at,
            format!(
                "secret file {} is {place}: the service runs as a dynamic user and may not be able to read it",
                path.display()
            ),
            Some(format!(
                "keep the file root-only and pass it in a drop-in: LoadCredential={name}:{}, \
                 then name $CREDENTIALS_DIRECTORY/{name} (/run/credentials/cemsd.service/{name}) here",
                path.display()
            )),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTENER: &str = r#"
[site]
id = "bureau"

[hj212_listener]
listen = "127.0.0.1:9001"
max_connections = 2000

[[hj212_listener.device]]
mn = "MN0001"
password = { file = "/etc/cemsd/plant-a.pw" }
stack = "plant-a"

[[influx]]
id = "main"
url = "http://127.0.0.1:8428"
bucket = "cems"
token_file = "/run/credentials/cemsd.service/influx.token"
"#;

    fn loaded(text: &str) -> (tempfile::TempDir, Loaded) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("bureau.toml");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write: {e}"));
        let loaded = crate::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        (dir, loaded)
    }

    #[test]
    fn a_listener_the_open_files_limit_cannot_hold_is_refused_at_its_key() {
        let (_dir, loaded) = loaded(LISTENER);
        let needed = files_needed(&loaded.config);
        // 64 + 2 for the InfluxDB sink + 2000 connections
        assert_eq!(needed, 2066);
        let at = |limit| Environment {
            open_files_limit: Some(limit),
            ..Environment::default()
        };
        assert!(check(&loaded, &at(needed)).is_ok());
        let refused = match check(&loaded, &at(1024)) {
            Err(ConfigError::Invalid(e)) => e,
            other => panic!("expected a config error, got {other:?}"),
        };
        assert_eq!((refused.line, refused.column), (7, 19), "{refused}");
        assert_eq!(refused.key, "hj212_listener.max_connections");
        assert!(
            refused.message.contains("needs 2066 open files"),
            "{refused}"
        );
        assert!(
            refused
                .help
                .as_deref()
                .is_some_and(|h| h.contains("at most 958")),
            "{refused}"
        );
    }

    #[test]
    fn under_systemd_secret_files_outside_the_credentials_directory_are_warned_about() {
        let (_dir, loaded) = loaded(LISTENER);
        let shell = Environment::default();
        assert_eq!(check(&loaded, &shell).map(|w| w.len()).ok(), Some(0));
        let unit = Environment {
            under_systemd: true,
            credentials_dir: Some(PathBuf::from("/run/credentials/cemsd.service")),
            ..Environment::default()
        };
        let warnings = check(&loaded, &unit).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let warning = &warnings[0];
        assert_eq!(warning.key, "hj212_listener.device[0].password");
        assert_eq!(warning.line, 11);
        assert!(
            warning.message.contains("/etc/cemsd/plant-a.pw"),
            "{warning}"
        );
        assert!(
            warning
                .help
                .as_deref()
                .is_some_and(|h| h.contains("LoadCredential=plant-a.pw:/etc/cemsd/plant-a.pw")),
            "{warning}"
        );
        let no_credentials = Environment {
            under_systemd: true,
            ..Environment::default()
        };
        let warnings = check(&loaded, &no_credentials).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }
}
