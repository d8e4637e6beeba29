//! Medians, ranges and Eddy/NATS ratios over repeated runs (`eddy-bench compare`).
//!
//! Input: JSON lines, one per run, `{"case": "W2-1p", "rep": 1, "system": "eddy", "report":
//! {RunReport}}`, or `"error": "..."` instead of `"report"` for a run that failed.

use std::collections::BTreeMap;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use serde_json::Value;

/// Whether a larger value of a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

/// A figure a comparison shows: its label, where it is in a report, which way is better.
struct Metric {
    label: &'static str,
    pointer: &'static str,
    better: Better,
}

const fn metric(label: &'static str, pointer: &'static str, better: Better) -> Metric {
    Metric { label, pointer, better }
}

const RECORDS_PER_SEC: Metric = metric("records/s", "/records_per_sec", Better::Higher);
const MB_PER_SEC: Metric = metric("MB/s", "/mb_per_sec", Better::Higher);
const P50: Metric = metric("p50 ms", "/latency_ms/p50", Better::Lower);
const P99: Metric = metric("p99 ms", "/latency_ms/p99", Better::Lower);
const P99_9: Metric = metric("p99.9 ms", "/latency_ms/p99_9", Better::Lower);
const MAX: Metric = metric("max ms", "/latency_ms/max", Better::Lower);
const ACK_P99: Metric = metric("ack p99 ms", "/ack_latency_ms/p99", Better::Lower);
const SERVER_CPU: Metric = metric("server CPU s / M records", "/cpu/servers_s_per_million", Better::Lower);
const CLIENT_CPU: Metric = metric("client CPU s / M records", "/cpu/client_s_per_million", Better::Lower);
const NO_ACK: Metric = metric("no-ack window ms", "/failover/no_ack_window_ms", Better::Lower);
const LOST: Metric = metric("lost", "/verification/lost", Better::Lower);
const ERRORS: Metric = metric("errors", "/errors", Better::Lower);

/// The figures shown for a workload.
fn metrics_of(workload: &str) -> &'static [Metric] {
    match workload {
        "w1" => &[P50, P99, P99_9, RECORDS_PER_SEC, SERVER_CPU, ERRORS],
        "w2" => &[RECORDS_PER_SEC, MB_PER_SEC, P50, P99, SERVER_CPU, CLIENT_CPU, ERRORS],
        "w3" => &[P50, P99, P99_9, MAX, ACK_P99, SERVER_CPU, ERRORS],
        "w4" => &[RECORDS_PER_SEC, MB_PER_SEC, SERVER_CPU, CLIENT_CPU, ERRORS],
        "w5" => &[NO_ACK, MAX, LOST, ERRORS],
        _ => &[RECORDS_PER_SEC, P50, P99, ERRORS],
    }
}

/// Median and range of one metric over one system's runs of a case.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
        Some(Spread { median, min: values[0], max: values[n - 1], runs: n })
    }
}

/// One row of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub case: String,
    pub metric: &'static str,
    pub better: Better,
    pub eddy: Option<Spread>,
    pub nats: Option<Spread>,
    /// Eddy's median over NATS's (absent when either is missing or NATS's is 0).
    pub eddy_over_nats: Option<f64>,
}

/// A run worth a second look.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flagged {
    pub case: String,
    pub rep: u64,
    pub system: String,
    /// Why: "contended (other processes used N cores)" or the run's error.
    pub reason: String,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub rows: Vec<Row>,
    pub flagged: Vec<Flagged>,
}

/// Compares the runs (parsed JSON lines), in the order cases first appear.
pub fn compare(runs: &[Value]) -> Comparison {
    let mut cases: Vec<(String, String)> = Vec::new();
    // (case, system) -> reports
    let mut reports: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
    let mut flagged = Vec::new();
    for run in runs {
        let case = run["case"].as_str().unwrap_or("?").to_string();
        let system = run["system"].as_str().unwrap_or("?").to_string();
        let rep = run["rep"].as_u64().unwrap_or(0);
        let flag = |reason: String| Flagged { case: case.clone(), rep, system: system.clone(), reason };
        if let Some(error) = run.get("error") {
            flagged.push(flag(format!("failed: {}", error.as_str().unwrap_or("?"))));
            continue;
        }
        let report = &run["report"];
        if !cases.iter().any(|(c, _)| *c == case) {
            cases.push((case.clone(), report["workload"].as_str().unwrap_or("").to_string()));
        }
        if report["cpu"]["contended"] == Value::Bool(true) {
            let other = report["cpu"]["other_cores"].as_f64().unwrap_or(0.0);
            let steal = report["cpu"]["steal_cores"].as_f64().unwrap_or(0.0);
            flagged.push(flag(format!("contended: other processes {other:.2} cores, steal {steal:.2} cores")));
        }
        reports.entry((case.clone(), system.clone())).or_default().push(report);
    }
    let spread = |case: &str, system: &str, pointer: &str| {
        let values = reports
            .get(&(case.to_string(), system.to_string()))
            .map(|rs| rs.iter().filter_map(|r| r.pointer(pointer).and_then(Value::as_f64)).collect())
            .unwrap_or_default();
        Spread::of(values)
    };
    let mut rows = Vec::new();
    for (case, workload) in &cases {
        for m in metrics_of(workload) {
            let (eddy, nats) = (spread(case, "eddy", m.pointer), spread(case, "nats", m.pointer));
            let eddy_over_nats = match (eddy, nats) {
                (Some(e), Some(n)) if n.median != 0.0 => Some(e.median / n.median),
                _ => None,
            };
            rows.push(Row { case: case.clone(), metric: m.label, better: m.better, eddy, nats, eddy_over_nats });
        }
    }
    Comparison { rows, flagged }
}

fn figure(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn spread_text(spread: Option<Spread>) -> String {
    match spread {
        Some(s) => format!("{} [{}–{}]", figure(s.median), figure(s.min), figure(s.max)),
        None => "-".to_string(),
    }
}

/// The comparison as a table for people.
pub fn table(comparison: &Comparison) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec!["CASE", "METRIC", "EDDY median [min–max]", "NATS median [min–max]", "EDDY/NATS"]);
    for row in &comparison.rows {
        let ratio = row.eddy_over_nats.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "-".to_string());
        let better = match row.better {
            Better::Higher => "↑",
            Better::Lower => "↓",
        };
        table.add_row(vec![
            row.case.clone(),
            format!("{} {better}", row.metric),
            spread_text(row.eddy),
            spread_text(row.nats),
            ratio,
        ]);
    }
    let mut out = table.to_string();
    out.push_str("\n↑: higher is better, ↓: lower is better; medians over the repetitions.\n");
    for f in &comparison.flagged {
        out.push_str(&format!("flagged: {} rep {} {}: {}\n", f.case, f.rep, f.system, f.reason));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(case: &str, rep: u64, system: &str, records_per_sec: f64, contended: bool) -> Value {
        json!({"case": case, "rep": rep, "system": system, "report": {
            "workload": "w2", "records_per_sec": records_per_sec, "mb_per_sec": 1.0, "errors": 0,
            "latency_ms": {"p50": 1.0, "p99": 2.0, "p99_9": 3.0, "max": 4.0},
            "cpu": {"servers_s_per_million": 10.0, "client_s_per_million": 5.0, "contended": contended,
                    "other_cores": 0.5, "steal_cores": 0.0}}})
    }

    #[test]
    fn medians_ranges_and_ratios() {
        let runs = vec![
            run("W2-1p", 1, "eddy", 100.0, false),
            run("W2-1p", 1, "nats", 50.0, false),
            run("W2-1p", 2, "eddy", 300.0, true),
            run("W2-1p", 2, "nats", 70.0, false),
            run("W2-1p", 3, "eddy", 200.0, false),
            run("W2-1p", 3, "nats", 60.0, false),
            json!({"case": "W2-1p", "rep": 4, "system": "nats", "error": "boom"}),
        ];
        let comparison = compare(&runs);
        let row = comparison.rows.iter().find(|r| r.metric == "records/s").expect("records/s row");
        assert_eq!(row.eddy, Some(Spread { median: 200.0, min: 100.0, max: 300.0, runs: 3 }));
        assert_eq!(row.nats.map(|s| s.median), Some(60.0));
        assert!((row.eddy_over_nats.expect("ratio") - 200.0 / 60.0).abs() < 1e-9);
        assert_eq!(comparison.flagged.len(), 2, "{:?}", comparison.flagged);
        let text = table(&comparison);
        assert!(text.contains("200 [100–300]") || text.contains("200.0 [100.0–300.0]"), "{text}");
        assert!(text.contains("3.33×"), "{text}");
    }

    #[test]
    fn even_counts_take_the_mean_of_the_middle_two() {
        assert_eq!(Spread::of(vec![4.0, 1.0, 3.0, 2.0]).map(|s| s.median), Some(2.5));
        assert_eq!(Spread::of(Vec::new()), None);
    }
}
