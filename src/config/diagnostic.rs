//! Errors in files a person wrote (site configs, device profiles): always file, line, column,
//! the key at fault, and what would be accepted instead.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct SourceError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the offending key, e.g. `device[2].profile`.
    pub key: String,
    pub message: String,
    /// What to write instead.
    pub help: Option<String>,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.key,
            self.message
        )?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SourceError {}

/// A file's text with the means to turn byte offsets into 1-based line and column.
pub struct SourceText<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl<'a> SourceText<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        SourceText { file, text }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    pub fn error_at(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> SourceError {
        let (line, column) = self.position(span.start);
        SourceError {
            file: self.file.to_path_buf(),
            line,
            column,
            key: key.into(),
            message: message.into(),
            help,
        }
    }

    /// Turns a TOML parse/deserialise error into a SourceError, pulling the key out of serde's
    /// message where it names one and adding what is allowed.
    pub fn from_toml(&self, err: &toml::de::Error) -> SourceError {
        let span = err.span().unwrap_or(0..0);
        let (message, help) = split_toml_message(err.message().trim());
        let key = self
            .key_at(span.start)
            .unwrap_or_else(|| "(document)".into());
        self.error_at(span, key, message, help)
    }

    /// The dotted key whose value or name starts at `offset`: the table header above it
    /// plus the key on its line, good enough to point a person at the right place.
    fn key_at(&self, offset: usize) -> Option<String> {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset)?;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line_end = self.text[line_start..]
            .find('\n')
            .map(|i| line_start + i)
            .unwrap_or(self.text.len());
        let line = self.text[line_start..line_end].trim();
        let mut table = None;
        let mut index_of_table = std::collections::HashMap::<String, usize>::new();
        for l in self.text[..line_start].lines() {
            let l = l.trim();
            if let Some(name) = l.strip_prefix("[[").and_then(|s| s.split("]]").next()) {
                let name = name.trim().to_string();
                let n = index_of_table.entry(name.clone()).or_insert(0);
                table = Some(format!("{name}[{n}]"));
                *n += 1;
            } else if let Some(name) = l.strip_prefix('[').and_then(|s| s.split(']').next()) {
                table = Some(name.trim().to_string());
            }
        }
        let key = if line.starts_with('[') {
            None
        } else {
            line.split('=')
                .next()
                .map(|k| k.trim().trim_matches('"').to_string())
                .filter(|k| !k.is_empty())
        };
        match (table, key) {
            (Some(t), Some(k)) => Some(format!("{t}.{k}")),
            (Some(t), None) => Some(t),
            (None, Some(k)) => Some(k),
            (None, None) => None,
        }
    }
}

/// One step of a path into a TOML document: a key, or an index into an array (of tables).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// `device[2].profile` for a path.
pub fn path_name(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

impl SourceText<'_> {
    /// Byte span of the value at `path`, or of the deepest part of it that exists.
    pub fn span_of(&self, path: &[Seg]) -> Range<usize> {
        use toml::de::{DeTable, DeValue};
        let Ok(root) = DeTable::parse(self.text) else {
            return 0..0;
        };
        let mut span = 0..0;
        let mut table = Some(root.get_ref());
        let mut array: Option<&toml::de::DeArray> = None;
        for seg in path {
            let value = match (*seg, table, array) {
                (Seg::Key(k), Some(t), _) => t
                    .iter()
                    .find(|(key, _)| key.get_ref().as_ref() == k)
                    .map(|(_, v)| v),
                (Seg::Index(i), _, Some(a)) => a.get(i),
                _ => None,
            };
            let Some(value) = value else { break };
            span = value.span();
            table = None;
            array = None;
            match value.get_ref() {
                DeValue::Table(t) => table = Some(t),
                DeValue::Array(a) => array = Some(a),
                _ => {}
            }
        }
        span
    }

    /// An error about the value at `path`, positioned where that value is written.
    pub fn error_at_path(
        &self,
        path: &[Seg],
        message: impl Into<String>,
        help: Option<String>,
    ) -> SourceError {
        self.error_at(self.span_of(path), path_name(path), message, help)
    }
}

/// Splits serde's message into what is wrong and what is allowed, so every error carries a
/// help line a person can act on.
fn split_toml_message(message: &str) -> (String, Option<String>) {
    if let Some((what, allowed)) = message.split_once(", expected one of ") {
        return (
            what.into(),
            Some(format!("allowed here: {}", allowed.trim())),
        );
    }
    if message.starts_with("unknown variant") {
        if let Some((what, allowed)) = message.split_once(", expected ") {
            return (
                what.into(),
                Some(format!("allowed here: {}", allowed.trim())),
            );
        }
    }
    if let Some((what, fix)) = message.split_once(": expected ") {
        return (what.into(), Some(format!("write {}", fix.trim())));
    }
    let help = if message.starts_with("missing field") {
        Some("add the key; see the sample configs in deploy/".into())
    } else if message.starts_with("invalid type") {
        Some(
            "check the value's type: numbers unquoted, text in quotes, durations as \"10s\"".into(),
        )
    } else {
        None
    };
    (message.into(), help)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let path = Path::new("x.toml");
        let src = SourceText::new(path, "a = 1\nnäme = 2\n");
        assert_eq!(src.position(0), (1, 1));
        assert_eq!(src.position(6), (2, 1));
        // byte offset of '=' on line 2: "näme " is 6 bytes
        assert_eq!(src.position(12), (2, 6));
    }

    #[test]
    fn span_of_finds_array_table_values() {
        let path = Path::new("x.toml");
        let text = "[[device]]\nid = \"x\"\n[[device]]\nid = \"y\"\nprofile = \"p\"\n";
        let src = SourceText::new(path, text);
        let err = src.error_at_path(
            &[Seg::Key("device"), Seg::Index(1), Seg::Key("profile")],
            "unknown",
            None,
        );
        assert_eq!((err.line, err.column), (5, 11));
        assert_eq!(err.key, "device[1].profile");
    }

    #[test]
    fn key_at_names_array_table_entries() {
        let path = Path::new("x.toml");
        let text = "[site]\nid = \"a\"\n[[device]]\nid = \"x\"\n[[device]]\nid = \"y\"\nbad = 1\n";
        let src = SourceText::new(path, text);
        let offset = text.find("bad").unwrap_or(0);
        assert_eq!(src.key_at(offset).as_deref(), Some("device[1].bad"));
    }
}
