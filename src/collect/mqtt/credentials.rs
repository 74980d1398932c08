//! The broker password, read from a file or the environment when the source starts and
//! never printed: `Debug` shows a placeholder, and errors name only where it was looked for.

use std::fmt;
use std::path::Path;

use crate::config::relative_to;

use crate::config::mqtt::MqttSourceConfig;

pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// The password of `source`, if it has one; `config_path` anchors a relative password_file.
pub fn password(source: &MqttSourceConfig, config_path: &Path) -> Result<Option<Secret>, String> {
    if let Some(file) = &source.password_file {
        let path = relative_to(config_path, file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: cannot read the password file: {e}", path.display()))?;
        let password = text.strip_suffix('\n').unwrap_or(&text);
        let password = password.strip_suffix('\r').unwrap_or(password);
        return Ok(Some(Secret(password.to_string())));
    }
    if let Some(var) = &source.password_env {
        return match std::env::var(var) {
            Ok(value) => Ok(Some(Secret(value))),
            Err(std::env::VarError::NotPresent) => Err(format!(
                "environment variable {var} (password_env) is not set"
            )),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!(
                "environment variable {var} (password_env) is not UTF-8"
            )),
        };
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(extra: &str) -> MqttSourceConfig {
        let text =
            format!("id = \"s\"\nurl = \"mqtt://h\"\nclient_id = \"c\"\nusername = \"u\"\n{extra}");
        toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn reads_the_file_without_its_line_end_and_never_shows_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("pw"), "s3cret\r\n").unwrap_or_else(|e| panic!("{e}"));
        let config_path = dir.path().join("site.toml");
        let secret = password(&source("password_file = \"pw\""), &config_path)
            .unwrap_or_else(|e| panic!("{e}"));
        let secret = secret.unwrap_or_else(|| panic!("a password"));
        assert_eq!(secret.expose(), "s3cret");
        assert_eq!(format!("{secret:?}"), "Secret(…)");
    }

    #[test]
    fn missing_sources_are_errors_that_do_not_leak() {
        let err = password(
            &source("password_env = \"CEMSD_TEST_NO_SUCH_VAR\""),
            Path::new("x.toml"),
        )
        .err()
        .unwrap_or_default();
        assert_eq!(
            err,
            "environment variable CEMSD_TEST_NO_SUCH_VAR (password_env) is not set"
        );
        let err = password(
            &source("password_file = \"/nonexistent/pw\""),
            Path::new("x.toml"),
        )
        .err()
        .unwrap_or_default();
        assert!(
            err.starts_with("/nonexistent/pw: cannot read the password file"),
            "{err}"
        );
        assert!(password(&source(""), Path::new("x.toml")).is_ok_and(|p| p.is_none()));
    }
}
