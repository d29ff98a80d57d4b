//! Generates the gRPC service traits from `proto/` with protox (pure Rust, no system `protoc`).
//! The messages, clients and descriptor set come from the `telephony-admin-api` crate; the
//! traits name its message types through an `extern_path`.

const PROTO_ROOT: &str = "proto";
const PROTO_FILES: &[&str] = &[
    "telephony/admin/v1/common.proto",
    "telephony/admin/v1/account_service.proto",
    "telephony/admin/v1/user_service.proto",
    "telephony/admin/v1/phone_number_service.proto",
    "telephony/admin/v1/telephony_service.proto",
    "telephony/admin/v1/change_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed={PROTO_ROOT}");
    generate_service_traits()
}

fn generate_service_traits() -> Result<(), Box<dyn std::error::Error>> {
    let file_descriptors = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .extern_path(".telephony.admin.v1", "::telephony_admin_api")
        .compile_fds(file_descriptors)?;
    Ok(())
}
