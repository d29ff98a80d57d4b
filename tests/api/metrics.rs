//! The `/metrics` listener of a real server process: after a known sequence of RPCs, the scrape
//! holds exactly those RPC counts (by service, method and status code) with consistent
//! histograms, the service's gauges and counters, no secrets; and the listener answers nothing
//! but `GET /metrics`.

use std::{collections::BTreeMap, time::Duration};

use telephony_admin::proto::{
    CreateAccountRequest, GetUserRequest, LogoutUserRequest, WatchChangesRequest,
    watch_changes_response::Kind,
};
use tokio::time::timeout;
use tonic::Code;

use crate::common::Backend;
use crate::common::fixtures::{UNKNOWN_ID, new_user};
use crate::common::process::{TestProcess, http_request};

/// One sample of a scrape: metric name, labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus / OpenMetrics text format (comments skipped).
pub fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closing brace");
                    let labels = body
                        .split("\",")
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (key, value) = pair.split_once("=\"").expect("key=\"value\"");
                            (key.to_owned(), value.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
                None => (series.to_owned(), BTreeMap::new()),
            };
            Sample {
                name,
                labels,
                value: value.parse().expect("a numeric value"),
            }
        })
        .collect()
}

/// The value of the one sample named `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(
        matching.len() <= 1,
        "{name} {labels:?} is ambiguous: {matching:?}"
    );
    matching.first().map(|s| s.value)
}

pub async fn scrape(server: &TestProcess) -> (String, Vec<Sample>) {
    let address = server.metrics_address.expect("metrics are served");
    let (status, headers, body) = http_request(address, "GET", "/metrics").await;
    assert_eq!(status, 200, "{body}");
    let content_type = headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        content_type,
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let samples = parse_samples(&body);
    (body, samples)
}

const USER_SERVICE: &str = "telephony.admin.v1.UserService";

fn rpc_count(samples: &[Sample], service: &str, method: &str, code: Code) -> Option<f64> {
    value(
        samples,
        "rpc_server_duration_seconds_count",
        &[
            ("rpc_system", "grpc"),
            ("rpc_service", service),
            ("rpc_method", method),
            ("rpc_grpc_status_code", &(code as i32).to_string()),
        ],
    )
}

async fn scrape_after_known_rpcs(backend: Backend) {
    let server = TestProcess::spawn(backend, &["--metrics-listen", "127.0.0.1:0"], &[]).await;
    let key = server.admin_key.clone();
    let mut accounts = server.accounts_as(Some(&key));
    let mut users = server.users_as(Some(&key));

    let account = accounts
        .create_account(CreateAccountRequest {
            name: "Metrics".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let user = users
        .create_user(new_user(&account.account_id, "metrics@example.com"))
        .await
        .unwrap()
        .into_inner();
    let get = |user_id: &str| GetUserRequest {
        account_id: account.account_id.clone(),
        user_id: user_id.into(),
    };
    for _ in 0..3 {
        users.get_user(get(&user.user_id)).await.unwrap();
    }
    for _ in 0..2 {
        let refused = users.get_user(get(UNKNOWN_ID)).await.unwrap_err();
        assert_eq!(refused.code(), Code::NotFound);
    }
    let anonymous = server.users_as(None).get_user(get(&user.user_id)).await;
    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);
    let unknown_key = "k".repeat(40);
    let forged = server
        .users_as(Some(&unknown_key))
        .get_user(get(&user.user_id))
        .await;
    assert_eq!(forged.unwrap_err().code(), Code::Unauthenticated);

    // A watch stream, open while the scrape happens, that sees the one event written.
    let mut watch = server
        .changes_as(Some(&key))
        .watch_changes(WatchChangesRequest {
            account_id: account.account_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let logout = users
        .logout_user(LogoutUserRequest {
            account_id: account.account_id.clone(),
            user_id: user.user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let seen = timeout(Duration::from_secs(60), async {
        loop {
            let item = watch
                .message()
                .await
                .unwrap()
                .expect("the stream stays open");
            if let Some(Kind::Event(event)) = item.kind {
                return event.sequence;
            }
        }
    })
    .await
    .expect("the event arrives within 60 s");
    assert_eq!(seen, logout.sequence);

    let (text, samples) = scrape(&server).await;

    // RPCs by service, method and status code: exactly the calls above.
    assert_eq!(
        rpc_count(&samples, USER_SERVICE, "GetUser", Code::Ok),
        Some(3.0)
    );
    assert_eq!(
        rpc_count(&samples, USER_SERVICE, "GetUser", Code::NotFound),
        Some(2.0)
    );
    assert_eq!(
        rpc_count(&samples, USER_SERVICE, "GetUser", Code::Unauthenticated),
        Some(2.0)
    );
    assert_eq!(
        rpc_count(&samples, USER_SERVICE, "CreateUser", Code::Ok),
        Some(1.0)
    );
    assert_eq!(
        rpc_count(&samples, USER_SERVICE, "LogoutUser", Code::Ok),
        Some(1.0)
    );
    assert_eq!(
        rpc_count(
            &samples,
            "telephony.admin.v1.AccountService",
            "CreateAccount",
            Code::Ok
        ),
        Some(1.0)
    );
    assert_eq!(
        rpc_count(
            &samples,
            "telephony.admin.v1.ChangeService",
            "WatchChanges",
            Code::Ok
        ),
        Some(1.0),
        "a stream counts once, when it opens"
    );
    assert_eq!(
        rpc_count(&samples, USER_SERVICE, "DeleteUser", Code::Ok),
        None
    );

    // Each histogram: cumulative buckets ending in +Inf = _count, and a positive _sum.
    let ok_get = [
        ("rpc_service", USER_SERVICE),
        ("rpc_method", "GetUser"),
        ("rpc_grpc_status_code", "0"),
    ];
    let buckets: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == "rpc_server_duration_seconds_bucket"
                && ok_get
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(buckets.len() > 5, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value));
    let last = buckets.last().unwrap();
    assert_eq!(last.labels["le"], "+Inf");
    assert_eq!(last.value, 3.0);
    assert!(value(&samples, "rpc_server_duration_seconds_sum", &ok_get).unwrap() > 0.0);

    // Every label value is bounded: no ids or keys.
    for sample in &samples {
        for value in sample.labels.values() {
            assert!(
                !value.contains(&account.account_id) && !value.contains(&user.user_id),
                "an id leaked into a label: {sample:?}"
            );
        }
    }

    // Service metrics.
    let service = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
    assert_eq!(service("telephony_admin_watch_streams", &[]), Some(1.0));
    assert_eq!(
        service("telephony_admin_change_events_written_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        service("telephony_admin_change_newest_sequence", &[]),
        Some(logout.sequence as f64)
    );
    assert_eq!(
        service("telephony_admin_change_hub_sequence", &[]),
        Some(logout.sequence as f64)
    );
    assert_eq!(
        service("telephony_admin_change_hub_lag_events", &[]),
        Some(0.0)
    );
    assert_eq!(
        service(
            "telephony_admin_auth_failures_total",
            &[("reason", "missing_credentials")]
        ),
        Some(1.0)
    );
    assert_eq!(
        service(
            "telephony_admin_auth_failures_total",
            &[("reason", "unknown_key")]
        ),
        Some(1.0)
    );
    let in_use = service("telephony_admin_db_pool_connections_in_use", &[]).unwrap();
    let idle = service("telephony_admin_db_pool_connections_idle", &[]).unwrap();
    assert!(in_use + idle >= 1.0, "in use {in_use}, idle {idle}");
    assert!(service("telephony_admin_purge_runs_total", &[]).unwrap() >= 1.0);
    assert!(
        text.ends_with("# EOF\n"),
        "an OpenMetrics exposition ends with # EOF"
    );

    // Nothing secret.
    assert!(!text.contains(&key), "the admin key is in the scrape");
    assert!(!text.contains(&unknown_key));
    assert!(!text.to_lowercase().contains("postgres://") && !text.contains("sqlite://"));

    // The stream closing is seen.
    drop(watch);
    timeout(Duration::from_secs(60), async {
        loop {
            let (_, samples) = scrape(&server).await;
            if value(&samples, "telephony_admin_watch_streams", &[]) == Some(0.0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the watch stream gauge returns to 0 within 60 s");
}

async fn listener_answers_only_get_metrics(backend: Backend) {
    let server = TestProcess::spawn(backend, &["--metrics-listen", "127.0.0.1:0"], &[]).await;
    let address = server.metrics_address.expect("metrics are served");
    for method in ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        let (status, headers, _) = http_request(address, method, "/metrics").await;
        assert_eq!(status, 405, "{method} /metrics");
        assert!(
            headers.iter().any(|(n, v)| n == "allow" && v == "GET"),
            "{method}: {headers:?}"
        );
    }
    for path in [
        "/",
        "/metric",
        "/metrics/",
        "/debug/pprof",
        "/metrics/../config",
        "/.env",
    ] {
        let (status, _, body) = http_request(address, "GET", path).await;
        assert_eq!(status, 404, "GET {path}");
        assert!(!body.contains(&server.admin_key));
    }
    let (status, _, _) = http_request(address, "GET", "/metrics?format=json").await;
    assert_eq!(status, 200, "a query string does not change the resource");
}

async fn metrics_are_off_unless_asked_for(backend: Backend) {
    let server = TestProcess::spawn(backend, &[], &[]).await;
    assert_eq!(server.metrics_address, None);
    assert!(
        server
            .find_line(|line| line["message"] == "serving metrics at /metrics")
            .is_none()
    );
}

on_both_databases!(scrape_after_known_rpcs, metrics_are_off_unless_asked_for);

mod listener_refuses_everything_but_get_metrics {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::listener_answers_only_get_metrics(crate::common::Backend::Sqlite).await;
    }
}
