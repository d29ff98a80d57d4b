//! `telephony-admin import` and `export`, the real binary against a real server: a CSV with
//! good, bad and malformed rows, in a dry run, atomically and for real, and the exports; and an
//! import that goes on through a restart of the server.

use std::path::Path;
use std::process::Output;

use std::time::Duration;

use telephony_admin::proto::{CreateAccountRequest, ListUsersRequest};

use crate::common::batch::block;
use crate::common::process::ServerCommand;
use crate::common::{Backend, TestApp, TestDatabase, spawn_app};

/// Runs the binary with `args` against `app`, as its admin.
pub async fn cli(app: &TestApp, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_telephony-admin"));
    command
        .args(args)
        .arg("--endpoint")
        .arg(format!("http://{}", app.address))
        .env("TELEPHONY_ADMIN_KEY", &app.admin_key);
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .expect("join")
}

/// The result CSV's (status, message) per row.
pub fn results(path: &Path) -> Vec<(String, String)> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .expect("results");
    let header = reader.headers().expect("header").clone();
    assert_eq!(
        header.iter().rev().take(2).collect::<Vec<_>>(),
        ["message", "status"]
    );
    reader
        .records()
        .map(|r| {
            let r = r.expect("record");
            let n = r.len();
            (r[n - 2].to_owned(), r[n - 1].to_owned())
        })
        .collect()
}

pub fn statuses(path: &Path) -> Vec<String> {
    results(path).into_iter().map(|(s, _)| s).collect()
}

async fn imports_and_exports_go_through_the_service(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Import").await;
    for name in ["ann", "bob", "cat"] {
        app.create_user(&account.account_id, &format!("{name}@example.com"))
            .await;
    }
    let numbers = block(8000, 3);
    app.order_business_numbers(&numbers).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("assignments.csv");
    let mut content = format!(
        "email,e164_phone_number\n\
         ann@example.com,{}\n\
         bob@example.com,+12065559999\n\
         nobody@example.com,{}\n\
         cat@example.com\n",
        numbers[0], numbers[1]
    )
    .into_bytes();
    content.extend_from_slice(b"\xff\xfe@example.com,+12065558001\n");
    content.extend_from_slice(format!("CAT@example.com,{}\n", numbers[2]).as_bytes());
    std::fs::write(&file, content).expect("write csv");
    let path = file.to_str().expect("utf-8 path");
    let account_id = account.account_id.as_str();
    let results_file = dir.path().join("assignments.csv.results.csv");
    let expected = [
        "OK",
        "NOT_FOUND",
        "INVALID_ARGUMENT",
        "MALFORMED",
        "MALFORMED",
        "OK",
    ];
    // A dry run answers every row and changes nothing.
    let dry = cli(
        &app,
        &[
            "import",
            "assignments",
            path,
            "--account",
            account_id,
            "--dry-run",
        ],
    )
    .await;
    assert!(!dry.status.success(), "some rows fail");
    let stderr = String::from_utf8_lossy(&dry.stderr);
    assert!(
        stderr.contains("line 5: expected 2 columns, found 1"),
        "{stderr}"
    );
    assert!(stderr.contains("line 6: not valid UTF-8"), "{stderr}");
    assert_eq!(statuses(&results_file), expected);
    assert!(held(&app, account_id).await.is_empty());

    // Atomic: the malformed rows stop everything before anything is sent.
    let atomic = cli(
        &app,
        &[
            "import",
            "assignments",
            path,
            "--account",
            account_id,
            "--atomic",
        ],
    )
    .await;
    assert!(!atomic.status.success());
    assert!(String::from_utf8_lossy(&atomic.stderr).contains("nothing was sent"));
    assert!(held(&app, account_id).await.is_empty());

    // For real: the good rows go through, the others are named.
    let real = cli(
        &app,
        &[
            "import",
            "assignments",
            path,
            "--account",
            account_id,
            "--batch-size",
            "2",
        ],
    )
    .await;
    assert!(!real.status.success());
    let answered = results(&results_file);
    assert_eq!(statuses(&results_file), expected);
    assert!(answered[2].1.contains("nobody@example.com"), "{answered:?}");
    assert!(answered[1].1.contains("not found"), "{answered:?}");
    let mut holders = held(&app, account_id).await;
    holders.sort();
    assert_eq!(holders, ["ann@example.com", "cat@example.com"]);

    // Exports.
    let export = cli(&app, &["export", "assignments", "--account", account_id]).await;
    assert!(export.status.success(), "{export:?}");
    let csv_out = String::from_utf8(export.stdout).expect("utf-8");
    let mut lines = csv_out.lines();
    assert_eq!(lines.next(), Some("email,user_id,e164_phone_number"));
    assert_eq!(lines.count(), 2);
    let export = cli(
        &app,
        &[
            "export",
            "users",
            "--account",
            account_id,
            "--format",
            "jsonl",
        ],
    )
    .await;
    assert!(export.status.success(), "{export:?}");
    let users: Vec<serde_json::Value> = String::from_utf8(export.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(users.len(), 3);
    assert!(
        users
            .iter()
            .any(|u| u["e164_phone_number"] == numbers[0].as_str())
    );
    for kind in ["numbers", "changes"] {
        let export = cli(&app, &["export", kind]).await;
        assert!(export.status.success(), "{kind}: {export:?}");
        assert!(
            String::from_utf8_lossy(&export.stdout).lines().count() >= 3,
            "{kind}"
        );
    }

    // Users, with a bad license and a duplicate email.
    let file = dir.path().join("users.csv");
    std::fs::write(
        &file,
        "email,display_name,license_type\n\
         dan@example.com,Dan,PRO\n\
         eve@example.com,Eve,GOLD\n\
         ann@example.com,Ann Again,BASIC\n",
    )
    .expect("write csv");
    let users = cli(
        &app,
        &[
            "import",
            "users",
            file.to_str().unwrap(),
            "--account",
            account_id,
        ],
    )
    .await;
    assert!(!users.status.success());
    assert_eq!(
        statuses(&dir.path().join("users.csv.results.csv")),
        ["OK", "INVALID_ARGUMENT", "ALREADY_EXISTS"]
    );
    assert_eq!(app.all_users(&account.account_id).await.len(), 4);

    // A wrong key is refused as a whole.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_telephony-admin"));
    command
        .args(["export", "numbers", "--endpoint"])
        .arg(format!("http://{}", app.address))
        .args(["--key", "not-a-key"]);
    let refused = tokio::task::spawn_blocking(move || command.output().expect("runs"))
        .await
        .expect("join");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("unknown or revoked"),
        "{refused:?}"
    );
}

/// The emails of the account's users who hold a number.
async fn held(app: &TestApp, account_id: &str) -> Vec<String> {
    app.all_users(account_id)
        .await
        .into_iter()
        .filter(|u| !u.primary_phone_number.is_empty())
        .map(|u| u.email)
        .collect()
}

/// A server that is killed while an import runs and comes back on the same address and database
/// (an upgrade, a crash): the batches sent meanwhile are sent again, with their `request_id`,
/// until it answers, and every row is imported once.
async fn an_import_resends_its_batches_while_the_server_restarts(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let address = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("its address").to_string()
    };
    let key = telephony_admin::keys::generate_secret();
    // Throttled, so that the import is still sending when the server goes away.
    let server = || {
        ServerCommand::new().key(&key).listen(&address).args(&[
            "--rate-limit-admin-per-second",
            "40",
            "--rate-limit-admin-burst",
            "40",
        ])
    };
    let mut first = server().start_on(&database.url).await;
    let account = first
        .accounts()
        .create_account(CreateAccountRequest {
            name: "Restarted".into(),
        })
        .await
        .expect("an account")
        .into_inner()
        .account_id;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.csv");
    let mut csv = String::from("email,display_name,license_type\n");
    for n in 0..200 {
        csv.push_str(&format!("user{n}@example.com,User {n},BASIC\n"));
    }
    std::fs::write(&file, csv).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_telephony-admin"));
    command
        .args([
            "import",
            "users",
            file.to_str().unwrap(),
            "--account",
            &account,
        ])
        .args([
            "--batch-size",
            "10",
            "--endpoint",
            &format!("http://{address}"),
        ])
        .env("TELEPHONY_ADMIN_KEY", &first.admin_key);
    let import = tokio::task::spawn_blocking(move || command.output().expect("the binary runs"));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.kill();
    // Down long enough for the import to find it gone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = server().start_on(&database.url).await;
    let imported = import.await.expect("join");
    let stderr = String::from_utf8_lossy(&imported.stderr);
    assert!(imported.status.success(), "{stderr}");
    assert!(
        stderr.contains("the server is unavailable"),
        "the import met the server gone: {stderr}"
    );
    assert_eq!(
        statuses(&dir.path().join("users.csv.results.csv")),
        vec!["OK"; 200]
    );
    // The import emptied the key's bucket: the check waits for it to refill.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let listed = second
        .users()
        .list_users(ListUsersRequest {
            account_id: account,
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("the users")
        .into_inner();
    assert_eq!(listed.users.len(), 200, "each row once");
}

on_both_databases!(
    imports_and_exports_go_through_the_service,
    an_import_resends_its_batches_while_the_server_restarts,
);
