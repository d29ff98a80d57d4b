//! Webhook signing secrets at rest: what is stored is sealed (AES-256-GCM) and names its key,
//! the database file holds no secret, deliveries are still signed with the real secret, a
//! secret stored in the clear by an older version is sealed at start, `rotate-secrets-key`
//! seals everything with a new key while a server runs and delivers, and PostgreSQL asks for
//! a key file before any webhook is created.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use telephony_admin::proto::{
    RotateWebhookSecretRequest, webhook_service_client::WebhookServiceClient,
};
use telephony_admin::startup::Application;
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::http_receiver::{Mode, Receiver};
use crate::common::process::ServerCommand;
use crate::common::{
    Backend, Bearer, TestDatabase, shared_secrets_key_file, spawn_app_on, spawn_app_with,
    storage_for, test_settings,
};
use crate::webhooks::{account_and_user, create_for, fast_delivery, request, sign_outs, webhooks};

const WAIT: Duration = Duration::from_secs(60);
const SEALED: &str = "sealed:v1:";

/// The stored `secret` and `previous_secret` of every webhook.
async fn stored_secrets(db: &DatabaseConnection) -> Vec<(String, Option<String>)> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT secret, previous_secret FROM webhooks ORDER BY id",
        ))
        .await
        .expect("read the webhooks table");
    rows.iter()
        .map(|row| {
            (
                row.try_get("", "secret").unwrap(),
                row.try_get("", "previous_secret").unwrap(),
            )
        })
        .collect()
}

/// The key id a stored value names.
fn key_id(stored: &str) -> &str {
    stored
        .strip_prefix(SEALED)
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("not sealed: {stored}"))
}

/// What must not be found at rest: the secret, and the key inside it.
fn needles(secret: &str) -> [String; 2] {
    [
        secret.to_owned(),
        secret.trim_start_matches("whsec_").to_owned(),
    ]
}

fn sqlite_path(url: &str) -> PathBuf {
    let rest = url.strip_prefix("sqlite://").expect("a SQLite URL");
    PathBuf::from(rest.split('?').next().unwrap())
}

/// Every byte of the database's files (the database, its WAL and shared memory).
fn database_bytes(db_file: &Path) -> Vec<u8> {
    let dir = db_file.parent().unwrap();
    let name = db_file.file_name().unwrap().to_string_lossy().into_owned();
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with(&name) {
            bytes.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

async fn secrets_are_sealed_at_rest_and_deliveries_still_signed(backend: Backend) {
    let mut app = spawn_app_with(backend, fast_delivery).await;
    let (account, user) = account_and_user(&app, "Sealed").await;
    let receiver = Receiver::start(Mode::Accept).await;
    let created = webhooks(&app)
        .create_webhook(request(&receiver.url()))
        .await
        .expect("create")
        .into_inner();
    receiver.trust(&created.secret);
    let webhook_id = created.webhook.expect("the webhook").webhook_id;
    let first = sign_outs(&app, &account, &user, 1).await;
    receiver.wait_for(1, WAIT).await;
    let rotated = webhooks(&app)
        .rotate_webhook_secret(RotateWebhookSecretRequest {
            webhook_id: webhook_id.clone(),
        })
        .await
        .expect("rotate")
        .into_inner();
    receiver.trust(&rotated.secret);
    let second = sign_outs(&app, &account, &user, 1).await;
    receiver.wait_for(2, WAIT).await;
    assert_eq!(receiver.sequences(), [first, second].concat());
    assert!(
        receiver.bad_signatures().is_empty(),
        "{:?}",
        receiver.bad_signatures()
    );

    let secrets = [&created.secret, &rotated.secret];
    let stored = stored_secrets(app.store.connection()).await;
    let (current, previous) = &stored[0];
    let previous = previous.as_deref().expect("the previous secret is kept");
    for value in [current.as_str(), previous] {
        assert!(value.starts_with(SEALED), "stored sealed: {value}");
        for needle in secrets.iter().flat_map(|s| needles(s)) {
            assert!(!value.contains(&needle), "{value} holds a secret");
        }
    }
    assert_eq!(key_id(current), key_id(previous), "one key seals both");

    if backend == Backend::Sqlite {
        app.stop().await;
        let db_file = sqlite_path(&app.database_url);
        let bytes = database_bytes(&db_file);
        assert!(
            contains(&bytes, SEALED),
            "the sealed values are in the file"
        );
        for needle in secrets.iter().flat_map(|s| needles(s)) {
            assert!(
                !contains(&bytes, &needle),
                "the database file holds a secret"
            );
        }
        let key_file = db_file.with_extension("secrets-key");
        assert!(key_file.exists(), "the key file is beside the database");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the key file is private");
        }
    }
}

/// A secret an older version stored in the clear.
const CLEAR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn a_clear_secret_of_an_older_version_is_sealed_at_start(backend: Backend) {
    let mut app = spawn_app_with(backend, fast_delivery).await;
    let (account, user) = account_and_user(&app, "Older").await;
    let receiver = Receiver::start(Mode::Accept).await;
    create_for(&app, &receiver, None).await;
    app.stop().await;
    app.store
        .connection()
        .execute_unprepared(&format!(
            "UPDATE webhooks SET secret = '{CLEAR_SECRET}', previous_secret = NULL"
        ))
        .await
        .expect("store a clear secret");

    let database = app.database.take().expect("the app owns its database");
    let key = app.admin_key.clone();
    let restarted = spawn_app_on(database, |s| {
        fast_delivery(s);
        s.bootstrap_key = Some(key);
    })
    .await;
    let stored = stored_secrets(restarted.store.connection()).await;
    assert!(
        stored[0].0.starts_with(SEALED),
        "sealed at start: {stored:?}"
    );
    assert!(!stored[0].0.contains(CLEAR_SECRET));

    // Deliveries are signed with the secret the receiver has.
    receiver.trust(CLEAR_SECRET);
    let sent = sign_outs(&restarted, &account, &user, 2).await;
    receiver.wait_for(2, WAIT).await;
    assert_eq!(receiver.sequences(), sent);
    assert!(
        receiver.bad_signatures().is_empty(),
        "{:?}",
        receiver.bad_signatures()
    );
}

/// Runs `telephony-admin ARGS` against the database at `url` (and its shared key file).
async fn command(url: &str, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_telephony-admin"));
    command
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env_remove("DATABASE_URL");
    if let Some(path) = shared_secrets_key_file(url) {
        command.arg("--secrets-key-file").arg(path);
    }
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .expect("join")
}

async fn a_key_rotation_reseals_while_a_server_delivers(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let server = ServerCommand::new()
        .args(&[
            "--webhook-allow-insecure",
            "--delivery-retry-min",
            "50ms",
            "--delivery-retry-max",
            "400ms",
        ])
        .start_on(&database.url)
        .await;
    let account = server
        .accounts()
        .create_account(telephony_admin::proto::CreateAccountRequest {
            name: "Rotating".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .account_id;
    let receiver = Receiver::start(Mode::Accept).await;
    let created = server
        .webhooks()
        .create_webhook(request(&receiver.url()))
        .await
        .expect("create")
        .into_inner();
    receiver.trust(&created.secret);
    let store = telephony_admin::startup::connect_store(
        &storage_for(&database.url),
        telephony_admin::store::StoreOptions::default(),
    )
    .await
    .expect("a store on the server's database");
    let before = stored_secrets(store.connection()).await[0].0.clone();

    let rotated = command(&database.url, &["rotate-secrets-key"]).await;
    let printed = String::from_utf8_lossy(&rotated.stdout);
    assert!(
        rotated.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let after = stored_secrets(store.connection()).await[0].0.clone();
    assert_ne!(key_id(&before), key_id(&after), "sealed with the new key");
    assert!(
        printed.contains(&format!(
            "new secrets key {}: 1 webhook secrets sealed",
            key_id(&after)
        )),
        "{printed}"
    );

    // The running server meets the new key, reads the file again, and signs as before.
    let event = server
        .users()
        .create_user(crate::common::fixtures::new_user(&account, "r@example.com"))
        .await
        .expect("a user");
    let user = event.into_inner().user_id;
    server
        .users()
        .logout_user(telephony_admin::proto::LogoutUserRequest {
            account_id: account.clone(),
            user_id: user,
        })
        .await
        .expect("an event");
    receiver.wait_for(1, WAIT).await;
    assert!(
        receiver.bad_signatures().is_empty(),
        "{:?}",
        receiver.bad_signatures()
    );
    store.close().await.ok();
    drop(server);
}

on_both_databases!(
    secrets_are_sealed_at_rest_and_deliveries_still_signed,
    a_clear_secret_of_an_older_version_is_sealed_at_start,
    a_key_rotation_reseals_while_a_server_delivers,
);

/// PostgreSQL replicas share a key file that must be given: without one, no webhook can be
/// created (FAILED_PRECONDITION), and once one exists, no server starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn postgres_asks_for_a_key_file() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let mut keyless = storage_for(&database.url);
    keyless.secrets_key_file = None;
    let mut settings = test_settings();
    settings.webhook_allow_insecure = true;
    let key = settings.bootstrap_key.clone().unwrap();
    let app = Application::build(&keyless, settings)
        .await
        .expect("starts while no webhook exists");
    let address = app.local_addr();
    let stop = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = WebhookServiceClient::with_interceptor(
        channel,
        Bearer(Some(format!("Bearer {key}").parse().unwrap())),
    );
    let refused = client
        .create_webhook(request("http://127.0.0.1:9/a"))
        .await
        .expect_err("no key to seal with");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let reason = refused
        .get_details_precondition_failure()
        .expect("a PreconditionFailure");
    assert_eq!(reason.violations[0].r#type, "SECRETS_KEY_MISSING");
    stop.cancel();
    server.await.unwrap().unwrap();

    // With the shared key file, a webhook is created; then a server without it refuses to start.
    let mut app = spawn_app_on(database, |s| {
        fast_delivery(s);
        s.bootstrap_key = Some(key);
    })
    .await;
    crate::webhooks::try_create(&app, request("http://127.0.0.1:9/b"))
        .await
        .expect("created with the key file");
    app.stop().await;
    let error = match Application::build(&keyless, test_settings()).await {
        Ok(_) => panic!("a server without the key file started"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("--secrets-key-file"), "{error}");
}
