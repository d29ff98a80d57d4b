//! A key's life: created, listed and revoked with the `keys` command of the real binary, its
//! watch streams ended by its revocation, and its secret never in the server's log.

use super::next_event;
use crate::common::fixtures::REVOCATION_WAIT;
use crate::common::process::ServerCommand;
use crate::common::{Backend, TestDatabase, spawn_app};
use std::process::Command;
use std::time::{Duration, Instant};
use telephony_admin::keys::{self, Role, Scope};
use telephony_admin::proto::{
    CreateAccountRequest, CreateUserRequest, GetAccountRequest, LicenseType, ListAccountsRequest,
    ListUsersRequest, WatchChangesRequest, WatchChangesResponse, watch_changes_response::Kind,
};
use tonic::Code;

/// Revoking a key ends its open watch streams with UNAUTHENTICATED: once the server knows of the
/// revocation, they deliver no further event; a stream of another key carries on.
async fn revoking_a_key_ends_its_watch_streams(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await;
    let ann = app
        .create_user(&account.account_id, "ann@example.com")
        .await;
    let bob = app
        .create_user(&account.account_id, "bob@example.com")
        .await;
    app.order_business_numbers(&["+12065550100", "+12065550101"])
        .await;
    let (record, secret) = keys::create_key(
        &app.store,
        "watcher",
        Role::Viewer,
        &Scope::Organisation,
        None,
    )
    .await
    .expect("create key");
    let other = app.create_key(Role::Viewer, Scope::Organisation).await;
    let watch = |key: String| {
        let client = app.changes_as(Some(&key));
        async move {
            let mut client = client;
            client
                .watch_changes(WatchChangesRequest::default())
                .await
                .expect("watch")
                .into_inner()
        }
    };
    let mut revoked_stream = watch(secret.clone()).await;
    let mut other_stream = watch(other).await;

    app.assign(&account.account_id, &ann.user_id, "+12065550100")
        .await
        .expect("assign number");
    assert_eq!(next_event(&mut revoked_stream).await.user_id, ann.user_id);
    assert_eq!(next_event(&mut other_stream).await.user_id, ann.user_id);

    app.store
        .keys()
        .revoke(&record.id)
        .await
        .expect("revoke key");
    // Revoked through another store: the server learns of it within 1 s.
    app.wait_until_refused(&secret).await;
    app.assign(&account.account_id, &bob.user_id, "+12065550101")
        .await
        .expect("assign number");
    assert_eq!(next_event(&mut other_stream).await.user_id, bob.user_id);
    let ended = loop {
        let item = tokio::time::timeout(Duration::from_secs(10), revoked_stream.message())
            .await
            .expect("the revoked stream answers within 10 s");
        match item {
            Ok(Some(WatchChangesResponse {
                kind: Some(Kind::Event(event)),
            })) => panic!("an event reached a revoked key: {event:?}"),
            Ok(Some(_checkpoint)) => continue,
            Ok(None) => panic!("the stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
}

/// Runs `telephony-admin --database-url <url> <args>`; returns standard output.
async fn keys_command(database_url: &str, args: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_telephony-admin"));
    command
        .arg("--database-url")
        .arg(database_url)
        .arg("keys")
        .args(args)
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the command task")
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "keys {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn field<'a>(output: &'a str, name: &str) -> &'a str {
    output
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name:?} line in {output}"))
}

async fn keys_cli_creates_lists_and_revokes(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await;
    let other = app.create_account("Other").await;

    let created = keys_command(
        &app.database_url,
        &["create", "--name", "ops", "--role", "viewer"],
    )
    .await;
    let id = field(&created, "id:").to_owned();
    let secret = field(&created, "secret:").to_owned();
    assert!(secret.starts_with("tak_"), "{created}");
    assert_eq!(field(&created, "role:"), "viewer");
    assert_eq!(field(&created, "scope:"), "organisation");

    // The secret works against the running server, as a viewer.
    let accounts = app
        .accounts_as(Some(&secret))
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("the new key reads")
        .into_inner()
        .accounts;
    assert_eq!(accounts.len(), 2);
    let refused = app
        .accounts_as(Some(&secret))
        .create_account(CreateAccountRequest {
            name: "Never".into(),
        })
        .await
        .expect_err("a viewer may not change");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // An account-scoped admin key from the command acts on its account only.
    let scoped = keys_command(
        &app.database_url,
        &[
            "create",
            "--name",
            "acme ops",
            "--role",
            "admin",
            "--account",
            &account.account_id,
        ],
    )
    .await;
    assert_eq!(field(&scoped, "scope:"), account.account_id);
    let scoped_secret = field(&scoped, "secret:").to_owned();
    app.users_as(Some(&scoped_secret))
        .create_user(CreateUserRequest {
            account_id: account.account_id.clone(),
            email: "ann@example.com".into(),
            display_name: "Ann".into(),
            license_type: LicenseType::Basic as i32,
            ..Default::default()
        })
        .await
        .expect("the scoped key changes its account");
    let refused = app
        .users_as(Some(&scoped_secret))
        .list_users(ListUsersRequest {
            account_id: other.account_id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("the scoped key stays in its account");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // The list shows the key, never a secret.
    let listed = keys_command(&app.database_url, &["list"]).await;
    let line = listed
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{listed}"));
    assert!(line.contains("viewer") && line.contains("ops") && line.contains("organisation"));
    assert!(line.contains(" - "), "not revoked yet: {line}");
    for leaked in [&secret, &scoped_secret, &app.admin_key] {
        assert!(
            !listed.contains(leaked.as_str()),
            "a secret is listed:\n{listed}"
        );
    }
    assert!(!listed.contains("tak_"), "a secret is listed:\n{listed}");

    // Revoked by another process: refused within 1 s (polled with a generous deadline).
    let revoked = keys_command(&app.database_url, &["revoke", &id]).await;
    assert!(revoked.contains(&id), "{revoked}");
    app.wait_until_refused(&secret).await;
    let listed = keys_command(&app.database_url, &["list"]).await;
    let line = listed
        .lines()
        .find(|l| l.starts_with(&id))
        .expect("still listed");
    assert!(!line.contains(" - "), "shown as revoked: {line}");
    // Other keys keep working.
    app.accounts_as(Some(&scoped_secret))
        .get_account(GetAccountRequest {
            account_id: account.account_id.clone(),
        })
        .await
        .expect("another key is unaffected");
}

/// The secrets used against a real server process (valid, unknown and revoked ones) never
/// appear in what it logs, even at debug level.
async fn secrets_never_appear_in_the_server_log(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let mut server = ServerCommand::new()
        .env("RUST_LOG", "debug")
        .start_on(&database.url)
        .await;
    let bootstrap = server.admin_key.clone();
    let client = |secret: &str| server.accounts_as(Some(secret));
    client(&bootstrap)
        .create_account(CreateAccountRequest {
            name: "Acme".into(),
        })
        .await
        .expect("the bootstrap key works");
    let unknown = keys::generate_secret();
    let refused = client(&unknown)
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect_err("an unknown key");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let created = keys_command(
        &database.url,
        &["create", "--name", "ops", "--role", "admin"],
    )
    .await;
    let (id, secret) = (
        field(&created, "id:"),
        field(&created, "secret:").to_owned(),
    );
    client(&secret)
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("the created key works");
    keys_command(&database.url, &["revoke", id]).await;
    let deadline = Instant::now() + REVOCATION_WAIT;
    while client(&secret)
        .list_accounts(ListAccountsRequest::default())
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "the revoked key still works");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();
    let log = server.output();
    assert!(
        log.contains("AccountService/CreateAccount"),
        "the RPCs were logged, so the log was captured:\n{log}"
    );
    for leaked in [&bootstrap, &unknown, &secret] {
        assert!(!log.contains(leaked.as_str()), "a secret is in the log");
        // Not even the part after the prefix.
        assert!(!log.contains(&leaked[4..]), "a secret is in the log");
    }
    drop(database);
}

on_both_databases!(
    revoking_a_key_ends_its_watch_streams,
    keys_cli_creates_lists_and_revokes,
    secrets_never_appear_in_the_server_log,
);
