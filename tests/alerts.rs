//! The alert rules shipped in deploy/alerts/ on the engines plants run: a real `cemsd run`
//! (the demo plant, simulated analysers) forwards to VictoriaMetrics, which also scrapes its
//! `/metrics`; vmalert evaluates the shipped rules there and notifies Alertmanager, whose
//! webhook is a receiver inside the test. A scenario raises SO2 on unit 2 over its limit and
//! silences unit 1's analyser for a while; both alerts arrive with their labels, then their
//! resolution.
//!
//! Exceedance events open and close only as whole hours complete, so unit 1's last three
//! hours are replayed into the store before the daemon starts (the replay tooling, the live
//! processing code): its SO2 is over the limit from the second hour on and the event is
//! still open. The event's close is the record the same tooling stores when the hour after
//! it is back under the limit; it is added to the store while the daemon runs, and the
//! forwarder carries it like any other.
//!
//! The rules are the shipped files with the plant's windows and `for:` durations cut to
//! seconds (see `shortened`), so the test runs in about a minute; the expressions are the
//! shipped ones.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cemsd::store::{Record, RecordKind};
use support::monitored::{
    recent_hours, unit1_history, MonitoredPlant, SITE, SO2_OVER_FROM_HOUR_ONE,
};
use support::peers::alerting::{check_rules, Alertmanager, Notified, Vmalert, Webhook};
use support::store::append;

const RULE_FILES: [&str; 2] = [
    "deploy/alerts/cemsd-emissions.yml",
    "deploy/alerts/cemsd-health.yml",
];

fn shipped() -> Vec<PathBuf> {
    RULE_FILES
        .iter()
        .map(|f| Path::new(env!("CARGO_MANIFEST_DIR")).join(f))
        .collect()
}

/// The shipped rule files with every window and `for:` of minutes cut to seconds, written
/// to `dir`: `[10m]` and `[5m]` become `[5s]`, `[15m]` `[90s]` (over a minute: minute
/// records come once a minute), `for:` 2 s, group intervals 1 s.
fn shortened(dir: &Path) -> Vec<PathBuf> {
    let cuts = [
        ("interval: 1m", "interval: 1s"),
        ("[10m]", "[5s]"),
        ("[5m]", "[5s]"),
        ("[15m]", "[90s]"),
        ("for: 1m", "for: 2s"),
        ("for: 2m", "for: 2s"),
        ("for: 5m", "for: 2s"),
        ("for: 10m", "for: 2s"),
        ("for: 15m", "for: 2s"),
    ];
    shipped()
        .iter()
        .map(|file| {
            let mut text =
                std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            for (from, to) in cuts {
                text = text.replace(from, to);
            }
            let path = dir.join(file.file_name().unwrap_or_default());
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write rules: {e}"));
            path
        })
        .collect()
}

/// The exceedance record of `records`, open or closed.
fn exceedance(records: &[Record], closed: bool) -> Record {
    records
        .iter()
        .rev()
        .find(|r| r.kind == RecordKind::Exceedance && r.end.is_some() == closed)
        .cloned()
        .unwrap_or_else(|| panic!("no exceedance (closed: {closed}) in the replayed hours"))
}

#[test]
fn the_shipped_rules_load_in_vmalert() {
    let (ok, said) = check_rules(&shipped());
    assert!(ok, "vmalert -dryRun refused the rules:\n{said}");
}

/// Whether `alerts` holds `alertname` with `status` and all of `labels`.
fn has(alerts: &[Notified], alertname: &str, status: &str, labels: &[(&str, &str)]) -> bool {
    alerts.iter().any(|a| {
        a.status == status
            && a.label("alertname") == Some(alertname)
            && labels.iter().all(|(k, v)| a.label(k) == Some(*v))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exceedance_and_a_silent_analyser_reach_the_webhook_and_then_resolve() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (start, length) = recent_hours().await;
    let history = unit1_history(start, length, SO2_OVER_FROM_HOUR_ONE);
    let opened = exceedance(&history, false);
    // SO2 over the limit in the second hour only: the same event, closed by the third hour.
    let close = exceedance(
        &unit1_history(
            start,
            length,
            "[[event]]\nkind = \"exceedance\"\nstart = \"1h\"\nduration = \"1h\"\nchannel = \"so2\"\nfactor = 10.0\n",
        ),
        true,
    );
    assert_eq!(
        (close.ts, &close.stack, close.quantity),
        (opened.ts, &opened.stack, opened.quantity)
    );
    let webhook = Webhook::start().await;
    let alertmanager = Alertmanager::start(dir.path(), &webhook.url());
    // From 20 s to 45 s after start: unit 2's SO2 analyser reads 20 times its value (over
    // the special limit of 50 mg/m3), unit 1's PLC answers nothing.
    let plant = MonitoredPlant::start(
        dir.path(),
        &history,
        &[
            (
                "u2-so2",
                "[[event]]\nkind = \"exceedance\"\nstart = \"20s\"\nduration = \"25s\"\nchannel = \"so2\"\nfactor = 20.0\n",
            ),
            (
                "u1-scs900",
                "[[event]]\nkind = \"silent\"\nstart = \"20s\"\nduration = \"25s\"\n",
            ),
        ],
    )
    .await;
    let _vmalert = Vmalert::start(
        &shortened(dir.path()),
        &plant.vm.url(),
        &alertmanager.url(),
        "1s",
    );

    let over_limit = [
        ("site", SITE),
        ("stack", "unit2"),
        ("device", "u2-so2"),
        ("quantity", "SO2"),
        ("severity", "warning"),
    ];
    let silent = [
        ("site", SITE),
        ("stack", "unit1"),
        ("device", "u1-scs900"),
        ("severity", "critical"),
    ];
    let disconnected = [
        ("site", SITE),
        ("stack", "unit1"),
        ("device", "u1-scs900"),
        ("job", "cemsd"),
    ];
    let exceedance_open = [
        ("site", SITE),
        ("stack", "unit1"),
        ("quantity", "SO2"),
        ("severity", "critical"),
    ];
    let hour_over = [("site", SITE), ("stack", "unit1"), ("quantity", "SO2")];
    let expected = [
        ("CemsCorrectedOverLimit", &over_limit[..]),
        ("CemsDeviceSilent", &silent[..]),
        ("CemsdDeviceDisconnected", &disconnected[..]),
        ("CemsExceedanceOpen", &exceedance_open[..]),
    ];

    let deadline = Instant::now() + Duration::from_secs(100);
    let seen = |name: &str, status: &str, labels: &[(&str, &str)]| {
        has(&webhook.received(), name, status, labels)
    };
    // The event closes once its alert has fired.
    while !seen("CemsExceedanceOpen", "firing", &exceedance_open) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    append(&dir.path().join("data/cemsd.db"), &[close]);
    let all_seen = |status: &str| {
        expected
            .iter()
            .all(|(name, labels)| seen(name, status, labels))
    };
    while !(all_seen("firing") && all_seen("resolved")) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let got = webhook.received();
    // The last whole hour was over the limit too.
    assert!(has(&got, "CemsHourAverageOverLimit", "firing", &hour_over));
    let summary: Vec<String> = got
        .iter()
        .map(|a| format!("{} {:?}", a.status, a.labels))
        .collect();
    for (name, labels) in expected {
        assert!(
            has(&got, name, "firing", labels),
            "no firing {name} {labels:?}; received:\n{}\n{}",
            summary.join("\n"),
            plant.daemon.log_text()
        );
        assert!(
            has(&got, name, "resolved", labels),
            "no resolved {name} {labels:?}; received:\n{}",
            summary.join("\n")
        );
    }
    // Only the scripted device went silent, only the scripted stack went over its limit.
    for a in got.iter().filter(|a| a.status == "firing") {
        match a.label("alertname") {
            Some("CemsDeviceSilent") => assert_eq!(a.label("device"), Some("u1-scs900"), "{a:?}"),
            Some("CemsCorrectedOverLimit") => assert_eq!(a.label("stack"), Some("unit2"), "{a:?}"),
            _ => {}
        }
    }
    // Chinese first, English beside it.
    let firing = got
        .iter()
        .find(|a| a.status == "firing" && a.label("alertname") == Some("CemsDeviceSilent"))
        .unwrap_or_else(|| panic!("no firing CemsDeviceSilent"));
    let text = |key: &str| {
        firing
            .annotations
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        text("summary"),
        format!("{SITE} unit1 设备 u1-scs900 无数据")
    );
    assert_eq!(
        text("summary_en"),
        format!("{SITE} unit1 device u1-scs900 silent")
    );
}
