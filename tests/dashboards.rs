//! The Grafana dashboards shipped in deploy/grafana/dashboards/ against the data a real plant
//! gives: every panel query of every dashboard runs on a VictoriaMetrics fed by `cemsd run`
//! (the demo plant, with three hours of unit 1's past replayed into its store, an exceedance
//! in them, and its own `/metrics` scraped) the way Grafana sends it (instant panels through
//! `/api/v1/query`, the others through `/api/v1/query_range`), and returns data: no panel
//! stays empty, and every label its legend names is on every series.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::monitored::{
    recent_hours, unit1_history, MonitoredPlant, SITE, SO2_OVER_FROM_HOUR_ONE,
};

/// One panel query: dashboard file, panel title, expression, legend, instant or range.
#[derive(Debug, Clone)]
struct PanelQuery {
    dashboard: String,
    title: String,
    expr: String,
    legend: String,
    instant: bool,
}

/// Every target of every panel of every dashboard in deploy/grafana/dashboards/, with the
/// dashboard variables as Grafana fills them for this site and all its stacks.
fn panel_queries() -> Vec<PanelQuery> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        3,
        "plant, health and bureau dashboards: {files:?}"
    );
    let mut queries = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let panels = json["panels"].as_array().cloned().unwrap_or_default();
        assert!(!panels.is_empty(), "{name} has no panels");
        for panel in panels {
            assert_eq!(
                panel["datasource"]["type"], "prometheus",
                "{name}: {}",
                panel["title"]
            );
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            assert!(
                !targets.is_empty(),
                "{name}: {} has no query",
                panel["title"]
            );
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                queries.push(PanelQuery {
                    dashboard: name.clone(),
                    title: panel["title"].as_str().unwrap_or_default().to_string(),
                    expr: expr.replace("$site", SITE).replace("$stack", ".*"),
                    legend: target["legendFormat"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    instant: target["instant"].as_bool().unwrap_or(false),
                });
            }
        }
    }
    queries
}

/// The labels a legend format names: `{{stack}} {{channel}}` → stack, channel.
fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|part| {
            part.split_once("}}")
                .map(|(name, _)| name.trim().to_string())
        })
        .collect()
}

/// What is wrong with a panel's result, if anything: no series, a series without points,
/// a series without a label its legend names.
fn problem(query: &PanelQuery, data: &serde_json::Value) -> Option<String> {
    let expected = if query.instant { "vector" } else { "matrix" };
    if data["resultType"] != expected {
        return Some(format!(
            "result type {} instead of {expected}",
            data["resultType"]
        ));
    }
    let series = data["result"].as_array().cloned().unwrap_or_default();
    if series.is_empty() {
        return Some("no data".into());
    }
    for s in &series {
        let points = if query.instant {
            usize::from(s["value"].is_array())
        } else {
            s["values"].as_array().map_or(0, Vec::len)
        };
        if points == 0 {
            return Some(format!("a series without points: {s}"));
        }
        for label in legend_labels(&query.legend) {
            if s["metric"][&label].as_str().is_none_or(str::is_empty) {
                return Some(format!("series without label {label}: {}", s["metric"]));
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_of_every_dashboard_shows_data_from_a_running_plant() {
    let queries = panel_queries();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    // Three hours of unit 1 up to 30 s ago, its SO2 ten times over from the second hour on:
    // two hours over the limit and an exceedance still open.
    let (start, length) = recent_hours().await;
    let history = unit1_history(start, length, SO2_OVER_FROM_HOUR_ONE);
    // Unit 2's NOx analyser drops out for a few seconds, so polls fail and a gap is recorded.
    let plant = MonitoredPlant::start(
        dir.path(),
        &history,
        &[(
            "u2-nox",
            "[[event]]\nkind = \"silent\"\nstart = \"3s\"\nduration = \"5s\"\n",
        )],
    )
    .await;

    // Until every panel has data (the scrape, the forwarder and the gap need a few seconds).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut problems;
    loop {
        problems = Vec::new();
        for query in &queries {
            let data = if query.instant {
                plant.vm.query(&query.expr).await
            } else {
                plant
                    .vm
                    .query_range(
                        &query.expr,
                        Duration::from_secs(600),
                        Duration::from_secs(15),
                    )
                    .await
            };
            if let Some(p) = problem(query, &data) {
                problems.push(format!(
                    "{} / {}: {}\n  {}",
                    query.dashboard, query.title, p, query.expr
                ));
            }
        }
        if problems.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        problems.is_empty(),
        "{} of {} panel queries failed:\n{}\n{}",
        problems.len(),
        queries.len(),
        problems.join("\n"),
        plant.daemon.log_text()
    );
}
