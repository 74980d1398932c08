//! SIGHUP: read the config file again and decide whether it can replace the running one.
//! A config that does not validate is rejected with the same positioned errors as at start,
//! and the running one stays.

use std::path::Path;

use crate::collect::hj212::{Devices, Hj212Listener, RegistryChange};
use crate::config::hj212_listener::ListenerConfig;
use crate::config::{self, ConfigError, Loaded, SiteConfig};

/// Keys a running daemon cannot change: the store stays open across a reload, the HTTP
/// server keeps its socket and the HJ 212 listener its loggers' connections. A new value takes
/// effect at the next restart. The listener's loggers (its devices and its registry) are not
/// among them: [`apply_loggers`] hands them to the running listener.
pub fn restart_only_changes(running: &SiteConfig, new: &SiteConfig) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if running.store.path != new.store.path {
        changed.push("store.path");
    }
    if running.store.retention != new.store.retention {
        changed.push("store.retention");
    }
    if running.store.max_size != new.store.max_size {
        changed.push("store.max_size");
    }
    if running.http.as_ref().map(|h| h.listen) != new.http.as_ref().map(|h| h.listen) {
        changed.push("http.listen");
    }
    if running.hj212_listener.as_ref().map(listener_settings)
        != new.hj212_listener.as_ref().map(listener_settings)
    {
        changed.push("hj212_listener");
    }
    changed
}

/// A listener's settings without its loggers.
fn listener_settings(listener: &ListenerConfig) -> ListenerConfig {
    ListenerConfig {
        devices: Vec::new(),
        registered: Vec::new(),
        registry: None,
        ..listener.clone()
    }
}

/// Hands the loggers of a reloaded config to the running listener, passwords read again.
/// A password that cannot be read rejects the whole reload (`None`), so the running loggers
/// stay as they were.
pub fn apply_loggers(listener: Option<&Hj212Listener>, new: Loaded) -> Option<Loaded> {
    let (Some(listener), Some(config)) = (listener, &new.config.hj212_listener) else {
        return Some(new);
    };
    match Devices::load(config, new.config.site.utc_offset, &new.path) {
        Ok(devices) => {
            let change = listener.replace_devices(devices);
            if change != RegistryChange::default() {
                tracing::info!(
                    added = change.added,
                    changed = change.changed,
                    removed = change.removed,
                    "HJ 212 loggers reloaded; the connections of the others stay open"
                );
            }
            Some(new)
        }
        Err(e) => {
            tracing::error!("reload rejected, the running config stays: {e}");
            super::metrics::config_reloaded(false);
            None
        }
    }
}

/// Loads and validates the config at `path` for a reload, logging the outcome.
pub fn load(path: &Path, running: &SiteConfig) -> Result<Loaded, ConfigError> {
    let loaded = match config::load(path) {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::error!("reload rejected, the running config stays:\n{e}");
            super::metrics::config_reloaded(false);
            return Err(e);
        }
    };
    for key in restart_only_changes(running, &loaded.config) {
        tracing::warn!(
            "{}: {key} changed; it takes effect at the next restart",
            path.display()
        );
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SiteConfig {
        match config::parse(Path::new("site.toml"), text) {
            Ok(l) => l.config,
            Err(e) => panic!("test config: {e}"),
        }
    }

    #[test]
    fn only_store_http_and_listener_settings_need_a_restart() {
        let base =
            "[site]\nid = \"a\"\n[store]\npath = \"a.db\"\n[http]\nlisten = \"127.0.0.1:8080\"\n";
        let running = parse(base);
        assert!(restart_only_changes(&running, &parse(base)).is_empty());
        let renamed = base.replace("id = \"a\"", "id = \"b\"");
        assert!(restart_only_changes(&running, &parse(&renamed)).is_empty());
        let moved = base.replace("a.db", "b.db").replace("8080", "8081") + "";
        assert_eq!(
            restart_only_changes(&running, &parse(&moved)),
            vec!["store.path", "http.listen"]
        );
        let no_http = "[site]\nid = \"a\"\n[store]\npath = \"a.db\"\nretention = \"30d\"\n";
        assert_eq!(
            restart_only_changes(&running, &parse(no_http)),
            vec!["store.retention", "http.listen"]
        );
        let listener = format!(
            "{base}[hj212_listener]\nlisten = \"127.0.0.1:9001\"\n[[hj212_listener.device]]\nmn = \"MN1\"\npassword = {{ env = \"PW\" }}\nstack = \"s\"\n"
        );
        assert_eq!(
            restart_only_changes(&running, &parse(&listener)),
            vec!["hj212_listener"]
        );
        let with_listener = parse(&listener);
        // loggers are applied to the running listener
        let other_logger = listener.replace("MN1", "MN2");
        assert!(restart_only_changes(&with_listener, &parse(&other_logger)).is_empty());
        let other_port = listener.replace("9001", "9002");
        assert_eq!(
            restart_only_changes(&with_listener, &parse(&other_port)),
            vec!["hj212_listener"]
        );
        assert!(restart_only_changes(&with_listener, &parse(&listener)).is_empty());
    }
}
