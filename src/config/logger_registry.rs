//! The logger registry: a bureau's data loggers in a directory of small TOML files beside
//! the site config (`[hj212_listener] registry = "loggers.d"`), so adding an enterprise is
//! one new file and a SIGHUP, not an edit of the site config and a restart. Every `*.toml`
//! file in the directory holds `[[logger]]` tables with the keys of a
//! `[[hj212_listener.device]]` (`mn`, `password`, `stack`, `utc_offset`); files are read in
//! name order, other files are ignored. Mistakes name the registry file, line and column.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::diagnostic::{Seg, SourceText};
use crate::config::hj212_listener::{validate_device, ListenerConfig, ListenerDevice};
use crate::config::ConfigError;

/// One registry file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(rename = "logger", default)]
    loggers: Vec<ListenerDevice>,
}

/// Reads the registry `listener` names (relative to the site config `site`, whose text is
/// `site_src`) into `listener.registered`. An MN may be listed once across the site config
/// and every registry file.
pub fn load_into(site_src: &SourceText, listener: &mut ListenerConfig) -> Result<(), ConfigError> {
    let Some(dir) = &listener.registry else {
        return Ok(());
    };
    let dir = crate::config::relative_to(site_src.file, dir);
    let files = registry_files(&dir).map_err(|e| {
        site_src.error_at_path(
            &[Seg::Key("hj212_listener"), Seg::Key("registry")],
            format!("cannot read the logger registry {}: {e}", dir.display()),
            Some("name a directory of logger files (*.toml with [[logger]] tables), relative to this config".into()),
        )
    })?;
    // where each MN was first listed, for the message about a second listing
    let mut listed: HashMap<String, String> = listener
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let (line, column) = site_src.position(
                site_src
                    .span_of(&[
                        Seg::Key("hj212_listener"),
                        Seg::Key("device"),
                        Seg::Index(i),
                    ])
                    .start,
            );
            (
                d.mn.clone(),
                format!("{}:{line}:{column}", site_src.file.display()),
            )
        })
        .collect();
    let mut registered = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| ConfigError::Unreadable(file.clone(), e))?;
        let src = SourceText::new(&file, &text);
        let parsed: RegistryFile = toml::from_str(&text).map_err(|e| src.from_toml(&e))?;
        for (i, mut logger) in parsed.loggers.into_iter().enumerate() {
            let at = [Seg::Key("logger"), Seg::Index(i)];
            validate_device(&src, &at, &logger)?;
            let (line, column) = src.position(src.span_of(&at).start);
            let here = format!("{}:{line}:{column}", file.display());
            if let Some(first) = listed.insert(logger.mn.clone(), here) {
                return Err(src
                    .error_at_path(
                        &[Seg::Key("logger"), Seg::Index(i), Seg::Key("mn")],
                        format!("MN {:?} is already listed at {first}", logger.mn),
                        Some("each data logger is listed once; remove one of the two".into()),
                    )
                    .into());
            }
            logger.defined_in = Some(file.clone());
            registered.push(logger);
        }
    }
    listener.registered = registered;
    Ok(())
}

/// The `*.toml` files directly in `dir`, in name order.
fn registry_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(dir: &Path, extra: &str) -> Result<crate::config::Loaded, ConfigError> {
        let text = format!(
            "[site]\nid = \"bureau\"\n[hj212_listener]\nlisten = \"127.0.0.1:9001\"\nregistry = \"loggers.d\"\n{extra}"
        );
        crate::config::parse(&dir.join("bureau.toml"), &text)
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir.join("loggers.d")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("loggers.d").join(name), text).unwrap_or_else(|e| panic!("{e}"));
    }

    const LOGGER: &str =
        "[[logger]]\nmn = \"MN1\"\npassword = { file = \"mn1.pw\" }\nstack = \"plant-a.unit1\"\n";

    #[test]
    fn loggers_come_from_every_toml_file_in_name_order() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        write(dir.path(), "b.toml", &LOGGER.replace("MN1", "MN2"));
        write(dir.path(), "a.toml", LOGGER);
        write(dir.path(), "README", "not a logger file");
        let loaded = site(dir.path(), "").unwrap_or_else(|e| panic!("{e}"));
        let listener = loaded
            .config
            .hj212_listener
            .unwrap_or_else(|| panic!("no listener"));
        let mns: Vec<_> = listener.all_devices().map(|d| d.mn.as_str()).collect();
        assert_eq!(mns, ["MN1", "MN2"]);
        assert_eq!(
            listener.registered[1].defined_in.as_deref(),
            Some(dir.path().join("loggers.d/b.toml").as_path())
        );
    }

    #[test]
    fn mistakes_name_the_registry_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        write(dir.path(), "a.toml", LOGGER);
        write(
            dir.path(),
            "b.toml",
            &format!(
                "{}{}",
                LOGGER.replace("MN1", "MN2"),
                LOGGER.replace("MN1", "MN;2")
            ),
        );
        let error = site(dir.path(), "").map(|_| ()).unwrap_err().to_string();
        let b = dir.path().join("loggers.d/b.toml");
        assert!(
            error.starts_with(&format!(
                "{}:6:6: logger[1].mn: MN \"MN;2\" contains",
                b.display()
            )),
            "{error}"
        );
        write(dir.path(), "b.toml", LOGGER);
        let error = site(dir.path(), "").map(|_| ()).unwrap_err().to_string();
        let a = dir.path().join("loggers.d/a.toml");
        assert!(
            error.starts_with(&format!(
                "{}:2:6: logger[0].mn: MN \"MN1\" is already listed at {}:1:1",
                b.display(),
                a.display()
            )),
            "{error}"
        );
        write(
            dir.path(),
            "b.toml",
            &format!("{}upload_interval = \"0s\"\n", LOGGER.replace("MN1", "MN2")),
        );
        let error = site(dir.path(), "").map(|_| ()).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "{}:5:19: logger[0].upload_interval: upload_interval = \"0s\" is outside 1s..=1d",
                b.display()
            )),
            "{error}"
        );
        write(
            dir.path(),
            "b.toml",
            "[[logger]]\nmn = \"MN2\"\nstak = \"x\"\n",
        );
        let error = site(dir.path(), "").map(|_| ()).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "{}:3:1: logger[0].stak: unknown field",
                b.display()
            )),
            "{error}"
        );
    }

    #[test]
    fn a_missing_registry_is_an_error_of_the_site_config() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let error = site(dir.path(), "").map(|_| ()).unwrap_err().to_string();
        assert!(
            error.contains(
                "bureau.toml:5:12: hj212_listener.registry: cannot read the logger registry"
            ),
            "{error}"
        );
    }
}
