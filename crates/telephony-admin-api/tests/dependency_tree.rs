//! The crate's promise to its users: depending on the clients compiles no part of the server.
//! Asks cargo for the crate's dependency tree (normal and build dependencies, as a dependent
//! compiles them) from the committed Cargo.lock, without the network.

use std::collections::BTreeSet;
use std::process::Command;

/// Packages that belong to the server, not to a client of it.
const SERVER_ONLY: &[&str] = &[
    "telephony-admin",
    "libsqlite3-sys",
    "phonenumber",
    "tonic-health",
    "tonic-reflection",
];
/// Families of packages: SeaORM (sea-orm, sea-query, …) and sqlx (sqlx-core, sqlx-postgres, …).
const SERVER_ONLY_PREFIXES: &[&str] = &["sea-", "sqlx"];

fn dependency_names() -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--package",
            "telephony-admin-api",
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--locked",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_client_crate_depends_on_no_database_or_server_crate() {
    let names = dependency_names();
    // The tree is the real one, not an empty answer.
    for expected in [
        "telephony-admin-api",
        "tonic",
        "prost",
        "tonic-prost",
        "protox",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    let server_only: Vec<_> = names
        .iter()
        .filter(|name| {
            SERVER_ONLY.contains(&name.as_str())
                || SERVER_ONLY_PREFIXES
                    .iter()
                    .any(|prefix| name.starts_with(prefix))
        })
        .collect();
    assert!(
        server_only.is_empty(),
        "the client crate pulls in {server_only:?}"
    );
}
