//! `cemsd dead-letters list|retry|drop`: what the daemon refused or could not deliver, for
//! an operator to read, send again (lines an InfluxDB server refused, once the cause is
//! fixed) or throw away. It works beside a running daemon: SQLite lets both write, and the
//! sinks take queued letters from the store within seconds.

use std::path::Path;

use crate::app::cli::{open_store, Failure};
use crate::model::time::UtcOffset;
use crate::model::Timestamp;
use crate::store::{DeadLetter, DeadLetterFilter, RETRY_PREFIX};

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    List,
    Retry,
    /// `all` allows dropping without any filter.
    Drop {
        all: bool,
    },
}

/// The filter as written on the command line; times are read in the site's zone.
#[derive(Debug, Clone, Default)]
pub struct FilterArgs {
    pub sink: Option<String>,
    pub reason: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// Characters of a reason and of a payload shown per line of `list`.
const REASON_SHOWN: usize = 60;
const PAYLOAD_SHOWN: usize = 80;

pub fn run(config_path: &Path, action: Action, args: &FilterArgs) -> Result<(), Failure> {
    let (loaded, mut store) = open_store(config_path)?;
    let zone = loaded.config.site.utc_offset;
    let filter = DeadLetterFilter {
        sink: args.sink.clone(),
        reason: args.reason.clone(),
        since: args
            .since
            .as_deref()
            .map(|t| parse_time("--since", t, zone))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|t| parse_time("--until", t, zone))
            .transpose()?,
    };
    let failed =
        |e: crate::store::StoreError| Failure::store(format!("store: {e}"), e.needs_operator());
    match action {
        Action::List => {
            let letters = store.find_dead_letters(&filter).map_err(failed)?;
            print!("{}", render(&letters));
        }
        Action::Retry => {
            let sinks: Vec<String> = loaded
                .config
                .influx
                .iter()
                .map(|s| s.store_name())
                .collect();
            let matched = store
                .find_dead_letters(&filter)
                .map_err(failed)?
                .iter()
                .filter(|d| !d.source.starts_with(RETRY_PREFIX))
                .count();
            let queued = store
                .queue_dead_letter_retry(&filter, &sinks)
                .map_err(failed)?;
            println!(
                "已排队重发 {queued} 条死信，cemsd 运行时由原接收端重新发送 / {queued} dead letters queued for retry; their sink sends them again while cemsd runs"
            );
            let skipped = matched.saturating_sub(queued);
            if skipped > 0 {
                println!(
                    "{skipped} 条不能重发：MQTT、HJ 212 的输入须由发送方重发，只有 InfluxDB 拒收的行可以重发 / {skipped} not retried: an input (MQTT, HJ 212) must be sent again by its sender; only lines an InfluxDB sink of this config refused can be sent again"
                );
            }
        }
        Action::Drop { all } => {
            if filter.is_empty() && !all {
                return Err(Failure::usage(
                    "dead-letters drop without --sink, --reason, --since or --until would drop every dead letter\n  help: narrow it down, or pass --all to mean it",
                ));
            }
            let dropped = store.drop_dead_letters(&filter).map_err(failed)?;
            println!("已删除 {dropped} 条死信 / {dropped} dead letters dropped");
        }
    }
    Ok(())
}

/// The `list` table: headings in Chinese with English beside them, one letter per line.
fn render(letters: &[DeadLetter]) -> String {
    let mut out = format!(
        "{:>8}  {:<26} {:<24} {:<8} {:<60}  {}\n",
        "编号 ID", "时间 TIME (UTC)", "来源 SOURCE", "状态 STATE", "原因 REASON", "内容 PAYLOAD"
    );
    let mut queued = 0;
    for letter in letters {
        let (source, state) = match letter.source.strip_prefix(RETRY_PREFIX) {
            Some(sink) => {
                queued += 1;
                (sink, "待重发 queued")
            }
            None => (letter.source.as_str(), "-"),
        };
        out.push_str(&format!(
            "{:>8}  {:<26} {:<24} {:<8} {:<60}  {}\n",
            letter.id,
            letter.ts.to_string(),
            source,
            state,
            shown(letter.reason.as_bytes(), REASON_SHOWN),
            shown(&letter.payload, PAYLOAD_SHOWN)
        ));
    }
    out.push_str(&format!(
        "共 {} 条死信，{queued} 条待重发 / {} dead letters, {queued} queued for retry\n",
        letters.len(),
        letters.len()
    ));
    out
}

/// At most `max` characters of `bytes` on one line: control characters as `.`, a cut
/// marked with `…`.
fn shown(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// RFC 3339, or a local `YYYY-MM-DD[THH:MM[:SS]]` in the site's zone.
fn parse_time(flag: &str, text: &str, zone: UtcOffset) -> Result<Timestamp, Failure> {
    use chrono::TimeZone;
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(Timestamp::from_datetime(at.to_utc()));
    }
    let local = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
    .or_else(|| {
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    });
    local
        .and_then(|l| zone.to_chrono().from_local_datetime(&l).single())
        .map(|at| Timestamp::from_datetime(at.to_utc()))
        .ok_or_else(|| {
            Failure::usage(format!(
                "{flag} {text:?}: not a time\n  help: write 2026-03-01, 2026-03-01T08:00 (the site's local time) or 2026-03-01T08:00:00+08:00"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_rfc_3339_or_in_the_site_zone() {
        let zone: UtcOffset = "+08:00".parse().unwrap_or_else(|e| panic!("{e}"));
        let at = |t: &str| parse_time("--since", t, zone).ok().map(|t| t.millis());
        // 2026-03-01T00:00:00+08:00 = 2026-02-28T16:00:00Z
        let midnight = Some(1_772_294_400_000);
        assert_eq!(at("2026-03-01"), midnight);
        assert_eq!(at("2026-03-01T00:00"), midnight);
        assert_eq!(at("2026-03-01 00:00:00"), midnight);
        assert_eq!(at("2026-02-28T16:00:00Z"), midnight);
        assert_eq!(at("yesterday"), None);
    }

    #[test]
    fn the_table_marks_queued_letters_and_cuts_long_fields() {
        let letter = |id, source: &str, payload: &[u8]| DeadLetter {
            id,
            ts: Timestamp::from_millis(1_767_225_600_000),
            source: source.into(),
            reason: "seq 9: HTTP 413: too large".into(),
            payload: payload.to_vec(),
        };
        let text = render(&[
            letter(1, "influx:main", b"cems_reading,site=p v=1\n"),
            letter(2, "retry:influx:main", &[b'x'; 100]),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("编号 ID") && lines[0].contains("内容 PAYLOAD"),
            "{text}"
        );
        assert!(
            lines[1].contains("influx:main") && lines[1].ends_with("v=1."),
            "{text}"
        );
        assert!(
            lines[2].contains("待重发 queued") && lines[2].ends_with('…'),
            "{text}"
        );
        assert!(!lines[2].contains("retry:"), "{text}");
        assert_eq!(
            lines[3],
            "共 2 条死信，1 条待重发 / 2 dead letters, 1 queued for retry"
        );
    }
}
