//! The day's parameter changes (the audit trail) under the day report: what changed, from
//! what to what, when, how and from which file, so a reader of the day's values sees the
//! spans, reference O2 or limits they were computed with changing.

use std::fmt::Write as _;

use crate::model::time::UtcOffset;
use crate::model::Timestamp;
use crate::report::lang::Lang;
use crate::store::AuditEntry;

/// `参数变更: 无`, or one line per entry, oldest first:
/// `  10:15:02 stack.unit1.reference_o2 6 -> 8 (重载, site, site.toml, sha256 0123456789abcdef)`.
pub fn render_changes(entries: &[AuditEntry], offset: UtcOffset, lang: Lang) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {}",
        lang.pick("参数变更", "Parameter changes"),
        if entries.is_empty() {
            lang.pick("无", "none")
        } else {
            ""
        }
    );
    let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    for e in entries.iter().rev() {
        let at = Timestamp(e.ts + offset.millis())
            .to_datetime()
            .format("%H:%M:%S");
        let how = match lang {
            Lang::Zh => e.how.zh(),
            Lang::En => e.how.as_str(),
        };
        let _ = write!(
            out,
            "  {at} {} {} -> {} ({how}, {}",
            e.item,
            value(&e.old),
            value(&e.new),
            e.source
        );
        if let Some(file) = &e.file {
            let _ = write!(out, ", {file}");
        }
        if let Some(sum) = &e.checksum {
            let _ = write!(out, ", sha256 {}", &sum[..sum.len().min(16)]);
        }
        out.push_str(")\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditHow;

    #[test]
    fn each_change_is_a_line_in_local_time_oldest_first() {
        let entry = |ts, item: &str, old: Option<&str>, new: &str| AuditEntry {
            ts,
            source: "site".to_string(),
            how: AuditHow::Reload,
            item: item.to_string(),
            old: old.map(str::to_string),
            new: Some(new.to_string()),
            file: Some("site.toml".to_string()),
            checksum: Some("0123456789abcdef0123".to_string()),
        };
        // newest first, as the store gives them; 02:15:02 UTC is 10:15:02 at +08:00
        let entries = [
            entry(1_767_233_702_000, "stack.unit1.limits.so2", None, "50"),
            entry(
                1_767_233_702_000 - 60_000,
                "stack.unit1.reference_o2",
                Some("6"),
                "8",
            ),
        ];
        assert_eq!(
            render_changes(&entries, UtcOffset::CHINA, Lang::Zh),
            "参数变更: \n  10:14:02 stack.unit1.reference_o2 6 -> 8 (重载, site, site.toml, sha256 0123456789abcdef)\n  10:15:02 stack.unit1.limits.so2 - -> 50 (重载, site, site.toml, sha256 0123456789abcdef)\n"
        );
        assert_eq!(
            render_changes(&[], UtcOffset::CHINA, Lang::En),
            "Parameter changes: none\n"
        );
    }
}
