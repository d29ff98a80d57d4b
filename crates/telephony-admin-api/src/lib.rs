//! # telephony-admin-api
//!
//! The contract of telephony-admin (protobuf package `telephony.admin.v1`) for Rust services
//! that call it: the messages, one typed client per service (`account_service_client`,
//! `user_service_client`, `phone_number_service_client`, `telephony_service_client`,
//! `change_service_client`), and the encoded descriptor set. It depends only on prost, tonic's
//! client side, tonic-prost, prost-types and tonic-types: using the clients does not compile the
//! server, its database drivers or its phone-number rules.
//!
//! ```text
//! cargo run -p telephony-admin-api --example console_flow
//! ```
//!
//! # Where the code comes from
//!
//! The `.proto` files stay at the repository's top level, in `proto/`, the one copy that
//! `buf lint` and `buf breaking` guard. This crate's build script compiles them with protox
//! (pure Rust, no system `protoc`) into the messages and clients, and writes the descriptor set
//! behind [`FILE_DESCRIPTOR_SET`]. The server (the `telephony-admin` package) depends on this
//! crate and generates only the service traits in its own build script, with
//! `extern_path(".telephony.admin.v1", "::telephony_admin_api")`, so both sides share one set of
//! message types and one descriptor set.
//!
//! # Errors
//!
//! Refusals carry `google.rpc` details (`BadRequest` field violations, `ErrorInfo`,
//! `PreconditionFailure`, …). Read them with [`tonic_types::StatusExt`], re-exported here with
//! [`tonic`] and [`prost_types`] so that a caller uses the versions these types were built with.
//!
//! # TLS
//!
//! The feature `tls-ring` turns on tonic's rustls client (`ClientTlsConfig`) for a server that
//! serves TLS itself.

pub use {prost_types, tonic, tonic_types};

/// The generated code, in the module path of its protobuf package.
pub mod telephony {
    pub mod admin {
        #[allow(clippy::all, missing_docs)]
        pub mod v1 {
            tonic::include_proto!("telephony.admin.v1");
        }
    }
}

pub use telephony::admin::v1::*;

/// The encoded `FileDescriptorSet` of every service and message of `telephony.admin.v1` (and
/// the well-known types they import): what server reflection serves, and what a dynamic client
/// can decode with.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("telephony_admin_descriptor");
