//! The Grafana dashboard in deploy/grafana/dashboards queries only metrics the service exports:
//! every metric name in its PromQL is checked against the metric families of a real scrape.

use std::collections::BTreeSet;

use crate::common::Backend;
use crate::common::process::{TestProcess, http_request};

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/grafana/dashboards/telephony-admin.json"
);

/// The sample names a scrape can hold, from its `# TYPE` lines (families without samples yet
/// included).
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (family, kind) = rest.split_once(' ').expect("# TYPE name kind");
        match kind {
            "counter" => {
                names.insert(format!("{family}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_count", "_sum"] {
                    names.insert(format!("{family}{suffix}"));
                }
            }
            _ => {
                names.insert(family.to_owned());
            }
        }
    }
    names
}

/// PromQL words that are not metric names.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "rate",
    "irate",
    "increase",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "histogram_quantile",
    "clamp_min",
    "clamp_max",
    "label_values",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "topk",
    "bottomk",
];

/// The metric names an expression selects: identifiers outside label matchers, ranges and
/// `by (…)` lists that are neither functions nor keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut cleaned = String::new();
    let mut depth_braces = 0;
    let mut depth_brackets = 0;
    for c in expr.chars() {
        match c {
            '{' => depth_braces += 1,
            '}' => depth_braces -= 1,
            '[' => depth_brackets += 1,
            ']' => depth_brackets -= 1,
            _ if depth_braces > 0 || depth_brackets > 0 => {}
            _ => cleaned.push(c),
        }
    }
    let mut names = BTreeSet::new();
    let mut words = Vec::new();
    let mut word = String::new();
    for c in cleaned.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.' {
            word.push(c);
        } else {
            if !word.is_empty() {
                words.push((std::mem::take(&mut word), c));
            }
            if !c.is_whitespace() {
                words.push((c.to_string(), ' '));
            }
        }
    }
    let mut previous = String::new();
    let mut in_grouping = false;
    for (word, next) in words {
        // `by (a, b)` and `without (a)` list labels: skip up to the closing parenthesis.
        if in_grouping {
            in_grouping = word != ")";
            previous = word;
            continue;
        }
        if matches!(previous.as_str(), "by" | "without") && word == "(" {
            in_grouping = true;
            continue;
        }
        let is_identifier = word
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if is_identifier && next != '(' && !PROMQL_WORDS.contains(&word.as_str()) {
            names.insert(word.clone());
        }
        previous = word;
    }
    names
}

fn expressions(dashboard: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            found.push(target["expr"].as_str().expect("a PromQL expr").to_owned());
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        // label_values(metric, label): the metric only.
        if let Some(query) = variable["query"]["query"].as_str() {
            let metric = query
                .strip_prefix("label_values(")
                .and_then(|rest| rest.split_once(','))
                .map_or(query, |(metric, _)| metric);
            found.push(metric.to_owned());
        }
    }
    found
}

#[test]
fn promql_words_are_told_apart_from_metric_names() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, rpc_method) (rate(rpc_server_duration_seconds_bucket{instance=~"$instance", x!="0"}[$__rate_interval]))) / clamp_min(sum(up), 1e-9)"#,
    );
    assert_eq!(
        names,
        BTreeSet::from([
            "rpc_server_duration_seconds_bucket".to_owned(),
            "up".to_owned()
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_queries_only_exported_metrics() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).expect("the dashboard file"))
            .expect("the dashboard is JSON");
    let server =
        TestProcess::spawn(Backend::Sqlite, &["--metrics-listen", "127.0.0.1:0"], &[]).await;
    // The RPC histogram has series once an RPC has been served.
    server
        .accounts_as(Some(&server.admin_key))
        .list_accounts(telephony_admin::proto::ListAccountsRequest::default())
        .await
        .expect("an RPC");
    let (status, _, text) = http_request(
        server.metrics_address.expect("metrics are served"),
        "GET",
        "/metrics",
    )
    .await;
    assert_eq!(status, 200);
    let exported = exported_names(&text);

    let expressions = expressions(&dashboard);
    assert!(expressions.len() >= 10, "{expressions:?}");
    let mut queried = BTreeSet::new();
    for expr in &expressions {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr}");
        queried.extend(names);
    }
    let unknown: Vec<&String> = queried.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics the service does not export: {unknown:?}\nexported: {exported:?}"
    );
    // What the dashboard is for: RPCs, watchers and lag, writes and events, the pool.
    for needed in [
        "rpc_server_duration_seconds_count",
        "rpc_server_duration_seconds_bucket",
        "telephony_admin_watch_streams",
        "telephony_admin_change_hub_lag_events",
        "telephony_admin_change_events_written_total",
        "telephony_admin_db_pool_connections_in_use",
        "telephony_admin_db_pool_connections_idle",
    ] {
        assert!(
            queried.contains(needed),
            "the dashboard does not show {needed}"
        );
    }
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
        }
    }
}
