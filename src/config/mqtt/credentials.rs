//! The broker password of an `[[mqtt]]` source: `password_file` (relative to the config file)
//! or `password_env`, read by the crate's one secret loader ([`SecretSource::load`]) when the
//! source starts. Errors name only where the password was looked for.

use std::path::Path;

use crate::config::secret::{Secret, SecretSource};

use super::MqttSourceConfig;

impl MqttSourceConfig {
    /// Where the password is, if the source has one (validation allows at most one key).
    pub fn password_source(&self) -> Option<SecretSource> {
        SecretSource::from_keys(self.password_file.as_ref(), self.password_env.as_ref())
    }
}

/// The password of `source`, if it has one; `config_path` anchors a relative password_file.
pub fn password(source: &MqttSourceConfig, config_path: &Path) -> Result<Option<Secret>, String> {
    source
        .password_source()
        .map(|from| from.load(config_path).map_err(|e| e.to_string()))
        .transpose()
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
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
    }

    #[test]
    fn missing_sources_are_errors_that_do_not_leak() {
        let err = password(
            &source("password_env = \"CEMSD_TEST_NO_SUCH_VAR\""),
            Path::new("x.toml"),
        )
        .err()
        .unwrap_or_default();
        assert!(
            err.starts_with("environment variable CEMSD_TEST_NO_SUCH_VAR is not set"),
            "{err}"
        );
        let err = password(
            &source("password_file = \"/nonexistent/pw\""),
            Path::new("x.toml"),
        )
        .err()
        .unwrap_or_default();
        assert!(
            err.starts_with("/nonexistent/pw: cannot read the secret"),
            "{err}"
        );
        assert!(password(&source(""), Path::new("x.toml")).is_ok_and(|p| p.is_none()));
    }

    /// The broker password used to be read by its own loader, which took an empty file as an
    /// empty password; like every secret, a blank one is now an error naming the file.
    #[test]
    fn an_empty_password_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("pw"), "\n").unwrap_or_else(|e| panic!("{e}"));
        let err = password(
            &source("password_file = \"pw\""),
            &dir.path().join("site.toml"),
        )
        .err()
        .unwrap_or_default();
        assert!(err.ends_with("pw: the secret file is empty"), "{err}");
    }
}
