//! Revoking an API key: servers keep verified keys in memory, so a revocation made elsewhere (the
//! `keys revoke` command, another replica's store) reaches them through the revocation generation
//! (polled) and, on PostgreSQL, NOTIFY. Refused within 1 s everywhere, and open streams end even
//! when idle. The tests poll with generous deadlines; they assert effects, not speed.

use std::time::Duration;

use crate::common::fixtures::REVOCATION_WAIT;
use crate::common::{Backend, TestApp, spawn_app};
use telephony_admin::domain::ids::KeyId;
use telephony_admin::keys::{self, Role, Scope};
use telephony_admin::proto::{
    ListAccountsRequest, WatchChangesRequest, WatchChangesResponse, watch_changes_response::Kind,
};
use tokio::time::timeout;
use tonic::{Code, Status, Streaming};

/// A new organisation viewer key: its id and secret.
async fn new_key(app: &TestApp) -> (KeyId, String) {
    let (record, secret) = keys::create_key(
        &app.store,
        "revocable",
        Role::Viewer,
        &Scope::Organisation,
        None,
    )
    .await
    .expect("create key");
    (record.id, secret)
}

/// Proves the key works on `app` (and so is cached there).
async fn works_on(app: &TestApp, secret: &str) {
    for _ in 0..2 {
        app.accounts_as(Some(secret))
            .list_accounts(ListAccountsRequest::default())
            .await
            .expect("the key works before it is revoked");
    }
}

async fn watch(app: &TestApp, secret: &str) -> Streaming<WatchChangesResponse> {
    let mut stream = app
        .changes_as(Some(secret))
        .watch_changes(WatchChangesRequest::default())
        .await
        .expect("watch")
        .into_inner();
    // The first checkpoint says the stream is live.
    let first = timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the first checkpoint arrives")
        .expect("a checkpoint");
    assert!(
        matches!(
            first,
            Some(WatchChangesResponse {
                kind: Some(Kind::Checkpoint(_))
            })
        ),
        "{first:?}"
    );
    stream
}

/// Reads until the stream ends; it must end with UNAUTHENTICATED, without any event.
async fn ends_unauthenticated(stream: &mut Streaming<WatchChangesResponse>) -> Status {
    loop {
        let item = timeout(REVOCATION_WAIT, stream.message())
            .await
            .expect("the revoked key's stream ends within the deadline");
        match item {
            Ok(Some(WatchChangesResponse {
                kind: Some(Kind::Checkpoint(_)),
            })) => continue,
            Ok(other) => panic!("expected the stream to end with a status, got {other:?}"),
            Err(status) => {
                assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
                assert!(status.message().contains("revoked"), "{status:?}");
                return status;
            }
        }
    }
}

/// A key cached by two servers on one database is refused by both after a third party revokes
/// it, and an idle stream of it on the second server ends. On PostgreSQL the second server
/// hears it through NOTIFY; on SQLite through the polled revocation generation.
async fn a_revocation_reaches_every_replica(backend: Backend) {
    let first = spawn_app(backend).await;
    let second = first.spawn_replica().await;
    let (id, secret) = new_key(&first).await;
    let (_, other_secret) = new_key(&first).await;
    works_on(&first, &secret).await;
    works_on(&second, &secret).await;
    works_on(&second, &other_secret).await;
    let mut stream = watch(&second, &secret).await;

    first.store.keys().revoke(&id).await.expect("revoke");

    first.wait_until_refused(&secret).await;
    second.wait_until_refused(&secret).await;
    ends_unauthenticated(&mut stream).await;
    // Other keys stay cached and keep working.
    works_on(&second, &other_secret).await;
}

/// An idle stream (no events at all) of a key revoked elsewhere ends: no event or checkpoint
/// interval is needed for it to notice.
async fn an_idle_stream_of_a_revoked_key_ends(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = new_key(&app).await;
    let mut stream = watch(&app, &secret).await;
    app.store.keys().revoke(&id).await.expect("revoke");
    ends_unauthenticated(&mut stream).await;
}

/// Unknown secrets are refused every time and are not remembered: a key created afterwards
/// with a secret that was tried before works at once.
async fn unknown_secrets_are_not_remembered(backend: Backend) {
    let app = spawn_app(backend).await;
    let secret = keys::generate_secret();
    for _ in 0..3 {
        let refused = app
            .accounts_as(Some(&secret))
            .list_accounts(ListAccountsRequest::default())
            .await
            .expect_err("an unknown key is refused");
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    keys::create_key(
        &app.store,
        "late",
        Role::Viewer,
        &Scope::Organisation,
        Some(secret.clone()),
    )
    .await
    .expect("create key");
    works_on(&app, &secret).await;
}

on_both_databases!(
    a_revocation_reaches_every_replica,
    an_idle_stream_of_a_revoked_key_ends,
    unknown_secrets_are_not_remembered,
);
