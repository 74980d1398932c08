//! A channel charted through a flag change stays one series: unit 2's SO2 analyser of a real
//! `cemsd run` calibrates for a few seconds (flag N → C → N, scripted by its simulator's
//! scenario), and VictoriaMetrics, fed by the forwarder, holds one series of its values and
//! one of its flag codes, each without a hole where the flag changed. With the flag as a tag
//! (the schema before) the calibration started a second series and both lines broke.

mod support;

use std::time::{Duration, Instant};

use support::monitored::MonitoredPlant;
use support::peers::victoria::Series;

const SO2: &str = r#"{device="u2-so2",channel="so2"}"#;

/// The flags a series of flag codes went through, repeats folded: [0, 3, 0] for N → C → N.
fn flag_runs(series: &Series) -> Vec<f64> {
    let mut runs: Vec<f64> = Vec::new();
    for (_, code) in series.points() {
        if runs.last() != Some(&code) {
            runs.push(code);
        }
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calibration_keeps_one_continuous_series() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let plant = MonitoredPlant::start(
        dir.path(),
        &[],
        &[(
            "u2-so2",
            "[[event]]\nkind = \"calibration\"\nstart = \"6s\"\nduration = \"6s\"\nchannel = \"so2\"\n",
        )],
    )
    .await;
    let flags_selector = format!("cems_reading_flag_code{SO2}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut flags = Vec::new();
    while Instant::now() < deadline {
        flags = plant.vm.export(&flags_selector).await;
        if flags.len() > 1
            || flags
                .first()
                .is_some_and(|s| flag_runs(s) == [0.0, 3.0, 0.0])
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(flags.len(), 1, "one series of flag codes: {flags:#?}");
    assert_eq!(flag_runs(&flags[0]), [0.0, 3.0, 0.0], "N, C (code 3), N");

    let values = plant
        .vm
        .export(&format!("cems_reading_measured{SO2}"))
        .await;
    assert_eq!(values.len(), 1, "one series of values: {values:#?}");
    // Polled every second: no two points more than 2.5 s apart, across both flag changes.
    let stamps = &values[0].timestamps;
    assert!(stamps.len() >= 10, "{stamps:?}");
    let widest = stamps.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(widest <= 2_500, "a hole of {widest} ms in {stamps:?}");

    // What a Grafana time-series panel asks for: one line.
    let data = plant
        .vm
        .query_range(
            &format!("cems_reading_measured{SO2}"),
            Duration::from_secs(120),
            Duration::from_secs(1),
        )
        .await;
    let lines = data["result"].as_array().map_or(0, Vec::len);
    assert_eq!(lines, 1, "{data}");
}
