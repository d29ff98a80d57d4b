//! Fair use: each API key has a token bucket per role (a batch takes one token per item) and
//! one for WatchChanges opens. A throttled call is RESOURCE_EXHAUSTED and says when to retry
//! (RetryInfo) and which limit refused it (QuotaFailure); another key is not affected; a call
//! without a valid key is charged to nobody; `import` waits and finishes every row.

use std::time::Duration;

use telephony_admin::keys::{Role, Scope};
use telephony_admin::proto::{
    BatchCreateUsersRequest, LicenseType, ListAccountsRequest, WatchChangesRequest,
    batch_create_users_request::Item as NewUser,
};
use tonic::Code;
use tonic_types::StatusExt;

use crate::cli_bulk::{cli, statuses};
use crate::common::{Backend, TestApp, spawn_app_with};

async fn list_accounts(app: &TestApp, key: Option<&str>) -> Result<(), tonic::Status> {
    app.accounts_as(key)
        .list_accounts(ListAccountsRequest::default())
        .await
        .map(drop)
}

/// The refusal's retry delay, after checking it is a rate limit's.
fn retry_after(refused: &tonic::Status, limit_words: &str) -> Duration {
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let delay = refused
        .get_details_retry_info()
        .and_then(|retry| retry.retry_delay)
        .expect("RetryInfo says when to retry");
    let violations = refused
        .get_details_quota_failure()
        .expect("QuotaFailure says which limit")
        .violations;
    assert_eq!(violations.len(), 1);
    assert!(
        violations[0].subject.starts_with("api_key:"),
        "{violations:?}"
    );
    assert!(
        violations[0].description.contains(limit_words),
        "{violations:?}"
    );
    assert_eq!(
        refused.get_details_error_info().map(|info| info.reason),
        Some("RATE_LIMIT_EXCEEDED".to_owned())
    );
    delay
}

fn rate_limited_count(role: &str, limit: &str) -> u64 {
    let series =
        format!("telephony_admin_rate_limited_total{{role=\"{role}\",limit=\"{limit}\"}} ");
    telephony_admin::metrics::enable()
        .encode(None)
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str())?.parse().ok())
        .unwrap_or(0)
}

async fn a_throttled_call_says_when_to_retry_and_which_limit(backend: Backend) {
    telephony_admin::metrics::enable();
    let counted_before = rate_limited_count("admin", "requests");
    let app = spawn_app_with(backend, |s| {
        s.rate_limits.admin_per_second = 1;
        s.rate_limits.admin_burst = 3;
    })
    .await;
    let other = app.create_key(Role::Admin, Scope::Organisation).await;

    // Calls without a valid key are charged to nobody.
    for key in [None, Some("not-a-key")] {
        for _ in 0..5 {
            let refused = list_accounts(&app, key).await.unwrap_err();
            assert_eq!(refused.code(), Code::Unauthenticated);
        }
    }
    let mut served = 0;
    let refused = loop {
        match list_accounts(&app, Some(&app.admin_key)).await {
            Ok(()) => served += 1,
            Err(refused) => break refused,
        }
        assert!(served <= 5, "a burst of 3 at 1/s is not unlimited");
    };
    assert!(
        (3..=4).contains(&served),
        "the whole burst was served: {served}"
    );
    let delay = retry_after(&refused, "admin role");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(1),
        "{delay:?}"
    );
    assert!(refused.message().contains("retry in"), "{refused:?}");

    // Another key has its own bucket.
    list_accounts(&app, Some(&other))
        .await
        .expect("another key is served");
    // After the delay the key is served again.
    tokio::time::sleep(delay).await;
    list_accounts(&app, Some(&app.admin_key))
        .await
        .expect("served after the delay it was given");
    assert!(rate_limited_count("admin", "requests") > counted_before);
}

fn new_users(count: usize) -> Vec<NewUser> {
    (0..count)
        .map(|n| NewUser {
            email: format!("user{n}@example.com"),
            display_name: "Rate".into(),
            license_type: LicenseType::Basic as i32,
            ..Default::default()
        })
        .collect()
}

async fn a_batch_takes_a_token_per_item(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.rate_limits.admin_per_second = 1;
        s.rate_limits.admin_burst = 5;
    })
    .await;
    let other = app.create_key(Role::Admin, Scope::Organisation).await;
    let account = app
        .accounts_as(Some(&other))
        .create_account(telephony_admin::proto::CreateAccountRequest {
            name: "Rates".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .account_id;
    let batch = |count| BatchCreateUsersRequest {
        account_id: account.clone(),
        items: new_users(count),
        validate_only: true,
        ..Default::default()
    };

    // More than the bucket holds can never pass: split it. Nothing is taken.
    let too_large = app
        .users()
        .batch_create_users(batch(6))
        .await
        .expect_err("larger than the burst");
    assert_eq!(too_large.code(), Code::InvalidArgument);
    assert!(too_large.message().contains("split"), "{too_large:?}");

    app.users()
        .batch_create_users(batch(5))
        .await
        .expect("a batch of the whole burst");
    let refused = app
        .users()
        .batch_create_users(batch(4))
        .await
        .expect_err("the bucket is empty");
    let delay = retry_after(&refused, "admin role");
    assert!(
        delay > Duration::from_secs(3),
        "four items wait for four tokens: {delay:?}"
    );
}

async fn watch_opens_are_limited_per_key(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.rate_limits.watch_opens_per_minute = 2;
        s.rate_limits.watch_opens_burst = 2;
    })
    .await;
    let open = |key: String| {
        let mut changes = app.changes_as(Some(&key));
        async move {
            changes
                .watch_changes(WatchChangesRequest::default())
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let first = open(app.admin_key.clone()).await.expect("first open");
    let second = open(app.admin_key.clone()).await.expect("second open");
    drop((first, second));
    // A rate on opens, not a cap on open streams: closing them does not help.
    let refused = open(app.admin_key.clone())
        .await
        .expect_err("third open in a minute");
    let delay = retry_after(&refused, "WatchChanges opens");
    assert!(delay <= Duration::from_secs(30), "{delay:?}");
    let other = app.create_key(Role::Admin, Scope::Organisation).await;
    open(other).await.expect("another key opens");
}

async fn import_waits_when_throttled_and_finishes_every_row(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.rate_limits.admin_per_second = 10;
        s.rate_limits.admin_burst = 10;
    })
    .await;
    let account = app.create_account("Imported").await.account_id;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.csv");
    let mut csv = String::from("email,display_name,license_type\n");
    for n in 0..30 {
        csv.push_str(&format!("user{n}@example.com,User {n},BASIC\n"));
    }
    std::fs::write(&file, csv).unwrap();

    let imported = cli(
        &app,
        &[
            "import",
            "users",
            file.to_str().unwrap(),
            "--account",
            &account,
            "--batch-size",
            "10",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&imported.stderr);
    assert!(imported.status.success(), "{stderr}");
    assert!(
        stderr.contains("retrying in"),
        "the import was throttled: {stderr}"
    );
    assert_eq!(
        statuses(&dir.path().join("users.csv.results.csv")),
        vec!["OK"; 30]
    );
    // The import emptied the key's bucket: the check waits for it to refill.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.all_users(&account).await.len(), 30, "each row once");
}

on_both_databases!(
    a_throttled_call_says_when_to_retry_and_which_limit,
    a_batch_takes_a_token_per_item,
    watch_opens_are_limited_per_key,
    import_waits_when_throttled_and_finishes_every_row,
);
