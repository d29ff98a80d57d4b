//! Two jobs for the server package:
//!
//! - Generates the gRPC service traits from `proto/` with protox (pure Rust, no system
//!   `protoc`). The messages, clients and descriptor set come from the `telephony-admin-api`
//!   crate; the traits name its message types through an `extern_path`.
//! - Tells the end-to-end tests whether PostgreSQL is configured (and, the same way, whether a
//!   browser is installed for the console's tests): without `TEST_DATABASE_URL`,
//!   outside CI, it sets `cfg(postgres_tests_skipped)`, and the PostgreSQL tests compile as
//!   `#[ignore]`d, so that `cargo test` reports them as ignored instead of as passed. Under
//!   `CI=true` they always compile to run (and fail if PostgreSQL is missing).

use std::env;

const PROTO_ROOT: &str = "proto";
const PROTO_FILES: &[&str] = &[
    "telephony/admin/v1/common.proto",
    "telephony/admin/v1/account_service.proto",
    "telephony/admin/v1/user_service.proto",
    "telephony/admin/v1/phone_number_service.proto",
    "telephony/admin/v1/telephony_service.proto",
    "telephony/admin/v1/change_service.proto",
    "telephony/admin/v1/webhook_service.proto",
    "telephony/admin/v1/emergency_location_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed={PROTO_ROOT}");
    generate_service_traits()?;
    mark_postgres_tests();
    mark_browser_tests();
    Ok(())
}

fn generate_service_traits() -> Result<(), Box<dyn std::error::Error>> {
    let file_descriptors = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .extern_path(".telephony.admin.v1", "::telephony_admin_api")
        .extern_path(".google.rpc", "::tonic_types::pb")
        // Small per-stream encode buffers (see src/codec.rs).
        .codec_path("crate::codec::LeanCodec")
        .compile_fds(file_descriptors)?;
    Ok(())
}

fn mark_postgres_tests() {
    println!("cargo::rustc-check-cfg=cfg(postgres_tests_skipped)");
    println!("cargo::rerun-if-env-changed=TEST_DATABASE_URL");
    println!("cargo::rerun-if-env-changed=CI");
    let configured = env::var("TEST_DATABASE_URL").is_ok_and(|url| !url.is_empty());
    let ci = env::var("CI").is_ok_and(|value| value == "true" || value == "1");
    if !configured && !ci {
        println!("cargo::rustc-cfg=postgres_tests_skipped");
    }
}

/// The console's browser tests need Debian's chromium and chromedriver (`CHROMEDRIVER` names
/// another driver): without them, outside CI, `cfg(browser_tests_skipped)` compiles those tests
/// as ignored. Under `CI=true` they always run (and fail if the browser is missing).
fn mark_browser_tests() {
    println!("cargo::rustc-check-cfg=cfg(browser_tests_skipped)");
    println!("cargo::rerun-if-env-changed=CHROMEDRIVER");
    let driver = env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let installed = std::path::Path::new(&driver).exists();
    // A file that does not exist yet is watched through its folder, which changes when it comes.
    let watched = if installed {
        driver.as_str()
    } else {
        std::path::Path::new(&driver)
            .parent()
            .and_then(|p| p.to_str())
            .unwrap_or("/usr/bin")
    };
    println!("cargo::rerun-if-changed={watched}");
    let ci = env::var("CI").is_ok_and(|value| value == "true" || value == "1");
    if !installed && !ci {
        println!("cargo::rustc-cfg=browser_tests_skipped");
    }
}
