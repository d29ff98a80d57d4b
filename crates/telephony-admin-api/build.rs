//! Generates the messages and typed clients from the repository's `proto/` (two levels up) with
//! protox, a pure-Rust protobuf compiler (no system `protoc`), and writes the encoded descriptor
//! set that server reflection serves. The service traits are not generated here: the server
//! generates them in its own build script, against these messages.

use std::{env, path::PathBuf};

use prost::Message;

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
    let proto_root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo::rerun-if-changed={}", proto_root.display());

    let file_descriptors = protox::compile(PROTO_FILES, [&proto_root])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("telephony_admin_descriptor.bin"),
        file_descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        // google.rpc.Status (the per-item status of batch answers) is tonic-types' own type.
        .extern_path(".google.rpc", "::tonic_types::pb")
        .compile_fds(file_descriptors)?;
    Ok(())
}
