//! Reading `GET /metrics` text and checking `deploy/grafana-dashboard.json` against it
//! (shared by the in-process and the lab metrics tests).
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Families `/metrics` exposes that no panel charts, and why.
pub const NOT_CHARTED: &[(&str, &str)] = &[];

pub const DASHBOARD: &str = include_str!("../../deploy/grafana-dashboard.json");

/// The alerting rules shipped beside the dashboard.
pub const ALERTS: &str = include_str!("../../deploy/prometheus-alerts.yml");

/// The PromQL of the alerting rules: every `expr:` line's text.
pub fn alert_queries() -> Vec<String> {
    ALERTS
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("expr:"))
        .map(|expr| expr.trim().to_owned())
        .collect()
}

/// Every metric name of the gateway's (`voiceai_*`, and the standard `process_*`) in
/// `text`.
pub fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        let Some(start) = ["voiceai_", "process_"]
            .iter()
            .filter_map(|prefix| rest.find(prefix))
            .min()
        else {
            break;
        };
        let preceded = rest[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded {
            names.push(tail[..end].to_owned());
        }
        at += start + end;
    }
    names
}

/// The PromQL of the dashboard: panel targets' `expr` and template variables' queries.
pub fn queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "query" | "definition", Value::String(text)) => {
                        out.push(text.clone());
                    }
                    _ => queries(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| queries(item, out)),
        _ => {}
    }
}

/// `/metrics`' families (`# TYPE name type`) and, per family, the sample names it has
/// in the text format (OpenMetrics: counters `_total`; histograms `_bucket`, `_sum`,
/// `_count`).
pub fn families(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_once(' '))
        .map(|(name, kind)| {
            let samples = match kind {
                "counter" => vec![format!("{name}_total")],
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|suffix| format!("{name}{suffix}"))
                    .collect(),
                _ => vec![name.to_owned()],
            };
            (name.to_owned(), samples)
        })
        .collect()
}

/// The value of the sample `name{labels}` (`labels` as written, e.g.
/// `direction="in"`; empty: no labels) in `text`.
pub fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let key = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|line| line.strip_prefix(key.as_str()))
        .and_then(|value| value.split(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Checks the dashboard against `text` (a `/metrics` answer): every name its PromQL uses
/// is exposed, every family exposed is charted or in [`NOT_CHARTED`]; and every name the
/// alerting rules use is exposed. Returns the number of families.
pub fn check_dashboard(text: &str) -> Result<usize, String> {
    let families = families(text);
    let exposed: BTreeSet<&str> = families.values().flatten().map(String::as_str).collect();
    // Every sample line belongs to a family (the TYPE lines are read right).
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        if !exposed.contains(name) {
            return Err(format!("sample {line} of no family"));
        }
    }
    let dashboard: Value =
        serde_json::from_str(DASHBOARD).map_err(|e| format!("the dashboard is not JSON: {e}"))?;
    let mut promql = Vec::new();
    queries(&dashboard, &mut promql);
    if promql.len() < 15 {
        return Err(format!("too few queries: {promql:?}"));
    }
    let used: BTreeSet<String> = promql.iter().flat_map(|q| metric_names(q)).collect();
    let unknown: Vec<&String> = used
        .iter()
        .filter(|name| !exposed.contains(name.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "the dashboard uses names /metrics does not expose: {unknown:?}"
        ));
    }
    let uncharted: Vec<&String> = families
        .iter()
        .filter(|(family, samples)| {
            !samples.iter().any(|sample| used.contains(sample))
                && !NOT_CHARTED.iter().any(|(name, _)| name == family)
        })
        .map(|(family, _)| family)
        .collect();
    if !uncharted.is_empty() {
        return Err(format!(
            "families no panel charts (chart them or list them in NOT_CHARTED): {uncharted:?}"
        ));
    }
    let alerts = alert_queries();
    if alerts.len() < 5 {
        return Err(format!("too few alert rules: {alerts:?}"));
    }
    let unknown: BTreeSet<String> = alerts
        .iter()
        .flat_map(|q| metric_names(q))
        .filter(|name| !exposed.contains(name.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "the alerting rules use names /metrics does not expose: {unknown:?}"
        ));
    }
    Ok(families.len())
}
