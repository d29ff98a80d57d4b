//! The code generated from `proto/`: messages, typed clients and service traits.

#![allow(clippy::all, missing_docs)]

pub mod telephony {
    pub mod admin {
        pub mod v1 {
            tonic::include_proto!("telephony.admin.v1");
        }
    }
}

pub use telephony::admin::v1::*;

/// The encoded descriptor set of every service, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("telephony_admin_descriptor");
