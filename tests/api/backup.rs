//! Backups that consumers notice: `backup` copies the SQLite database while the service writes,
//! `restore` puts the copy back with a new change-log identity, and a consumer that resumes with
//! the old `log_id` is told (CHANGE_LOG_REPLACED) instead of silently missing the events written
//! after the backup; a webhook's delivery resumes after the restored log's end and says why.
//! `new-log-epoch` does the last step for a database restored by other means, on either database.
//! Neither runs under a server serving the SQLite file.

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use telephony_admin::proto::{
    CreateWebhookRequest, GetUserRequest, GetWebhookRequest, LogoutUserRequest,
    WatchChangesRequest, watch_changes_response::Kind,
};
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::fixtures::new_user;
use crate::common::process::{ServerCommand, TestProcess};
use crate::common::{Backend, TestDatabase};

/// Runs `telephony-admin --database-url URL ARGS`.
async fn command(database_url: &str, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_telephony-admin"));
    command
        .arg("--database-url")
        .arg(database_url)
        .args(args)
        .env_remove("DATABASE_URL");
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .expect("join")
}

/// A new account with one user: their ids.
async fn account_and_user(server: &TestProcess, name: &str, email: &str) -> (String, String) {
    let account = server
        .accounts()
        .create_account(telephony_admin::proto::CreateAccountRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .account_id;
    let user = server
        .users()
        .create_user(new_user(&account, email))
        .await
        .unwrap()
        .into_inner()
        .user_id;
    (account, user)
}

/// The log identity and last sequence the server announces to a new watcher.
async fn log_position(server: &TestProcess) -> (String, u64) {
    let mut stream = server
        .changes()
        .watch_changes(WatchChangesRequest::default())
        .await
        .expect("watch")
        .into_inner();
    match stream.message().await.expect("a message").expect("open") {
        telephony_admin::proto::WatchChangesResponse {
            kind: Some(Kind::Checkpoint(checkpoint)),
        } => (checkpoint.log_id, checkpoint.sequence),
        other => panic!("expected the opening checkpoint, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_restores_with_a_new_log_that_consumers_notice() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("live.db").display());
    let backup_file = dir.path().join("backup.db");
    let server = ServerCommand::new()
        .args(&["--webhook-allow-insecure"])
        .start_on(&url)
        .await;
    let (account, user) = account_and_user(&server, "Backed up", "ann@example.com").await;
    let webhook = server
        .webhooks()
        .create_webhook(CreateWebhookRequest {
            // Nothing listens there: deliveries fail and retry, the cursor stays put.
            url: "http://127.0.0.1:9/hooks".into(),
            description: "restored".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .webhook
        .unwrap()
        .webhook_id;

    // Writes go on while the backup is taken.
    let writing = Arc::new(AtomicBool::new(true));
    let load = {
        let (writing, mut users) = (writing.clone(), server.users());
        let (account, user) = (account.clone(), user.clone());
        tokio::spawn(async move {
            let mut written = 0u64;
            while writing.load(Ordering::Relaxed) {
                users
                    .logout_user(LogoutUserRequest {
                        account_id: account.clone(),
                        user_id: user.clone(),
                    })
                    .await
                    .expect("a write under load");
                written += 1;
            }
            written
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let backed_up = command(&url, &["backup", "--to", backup_file.to_str().unwrap()]).await;
    assert!(backed_up.status.success(), "{backed_up:?}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    writing.store(false, Ordering::Relaxed);
    assert!(load.await.unwrap() > 0, "the backup was taken under load");
    let (old_log, seen) = log_position(&server).await;
    let stdout = String::from_utf8_lossy(&backed_up.stdout);
    let in_backup: u64 = stdout
        .rsplit("through event ")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("the backup names its last event: {stdout}"));
    assert!(
        in_backup < seen,
        "events came after the backup: {in_backup} < {seen}"
    );

    // A backup never overwrites a file.
    let again = command(&url, &["backup", "--to", backup_file.to_str().unwrap()]).await;
    assert!(!again.status.success());

    // Not under a running server: it would go on writing to a file that is no longer the
    // database.
    for args in [
        &["restore", "--from", backup_file.to_str().unwrap()][..],
        &["new-log-epoch"][..],
    ] {
        let refused = command(&url, args).await;
        assert!(!refused.status.success(), "{args:?}: {refused:?}");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("a server is serving"),
            "{args:?}: {refused:?}"
        );
    }
    assert_eq!(
        log_position(&server).await.0,
        old_log,
        "the refused commands changed nothing"
    );

    let admin_key = server.admin_key.clone();
    drop(server);
    let restored = command(&url, &["restore", "--from", backup_file.to_str().unwrap()]).await;
    assert!(restored.status.success(), "{restored:?}");
    assert!(
        String::from_utf8_lossy(&restored.stdout).contains("CHANGE_LOG_REPLACED"),
        "{restored:?}"
    );

    let server = ServerCommand::new().key(&admin_key).start_on(&url).await;
    // The data of the backup is there.
    server
        .users()
        .get_user(GetUserRequest {
            account_id: account.clone(),
            user_id: user.clone(),
        })
        .await
        .expect("the user, from the backup");
    // A consumer resuming where it was is told the log it read is gone.
    let refused = server
        .changes()
        .watch_changes(WatchChangesRequest {
            after_sequence: Some(seen),
            log_id: old_log.clone(),
            ..Default::default()
        })
        .await
        .expect_err("a resume point of the replaced log");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(
        refused.get_details_error_info().map(|info| info.reason),
        Some("CHANGE_LOG_REPLACED".to_owned())
    );
    let (new_log, head) = log_position(&server).await;
    assert_ne!(new_log, old_log);
    assert_eq!(
        head, in_backup,
        "the restored log ends where the backup did"
    );
    // The webhook resumes after the restored log's end, and says why.
    let shown = server
        .webhooks()
        .get_webhook(GetWebhookRequest {
            webhook_id: webhook,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        shown.last_error.contains("change log was replaced"),
        "{shown:?}"
    );
    assert_eq!(shown.delivered_through_sequence, in_backup);
}

#[tokio::test]
async fn backup_and_restore_refuse_postgresql_and_name_its_tools() {
    let url = "postgres://postgres@127.0.0.1:1/none";
    for args in [
        &["backup", "--to", "x.db"][..],
        &["restore", "--from", "x.db"][..],
    ] {
        let refused = command(url, args).await;
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("pg_dump") && stderr.contains("new-log-epoch"),
            "{stderr}"
        );
    }
}

/// After a restore by other means (PostgreSQL: pg_restore, PITR), `new-log-epoch` gives the log
/// a new identity that consumers notice, on either database.
async fn a_new_log_epoch_is_noticed_by_consumers(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let key = telephony_admin::keys::generate_secret();
    let server = ServerCommand::new().key(&key).start_on(&database.url).await;
    let (account, user) = account_and_user(&server, "Epoch", "eve@example.com").await;
    server
        .users()
        .logout_user(LogoutUserRequest {
            account_id: account,
            user_id: user,
        })
        .await
        .unwrap();
    let (old_log, seen) = log_position(&server).await;
    drop(server);

    let epoch = command(&database.url, &["new-log-epoch"]).await;
    assert!(epoch.status.success(), "{epoch:?}");
    assert!(
        String::from_utf8_lossy(&epoch.stdout).contains(&old_log),
        "{epoch:?}"
    );

    let server = ServerCommand::new().key(&key).start_on(&database.url).await;
    let refused = server
        .changes()
        .watch_changes(WatchChangesRequest {
            after_sequence: Some(seen),
            log_id: old_log.clone(),
            ..Default::default()
        })
        .await
        .expect_err("a resume point of the old log");
    assert_eq!(
        refused.get_details_error_info().map(|info| info.reason),
        Some("CHANGE_LOG_REPLACED".to_owned())
    );
    let (new_log, head) = log_position(&server).await;
    assert_ne!(new_log, old_log);
    assert_eq!(head, seen, "the events stay; only the identity is new");
}

on_both_databases!(a_new_log_epoch_is_noticed_by_consumers);
