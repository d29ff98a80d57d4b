//! The gRPC method an RPC path names, as bounded label values: the served methods are read
//! once from the service descriptors, and any other path is [`OTHER`].

use std::{collections::HashMap, sync::OnceLock};

use prost::Message;

/// The label value for an RPC path that is not one of the served methods.
pub const OTHER: &str = "_OTHER";

/// A gRPC method as bounded label values: one the server serves, or [`OTHER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcMethod {
    /// Fully qualified service name, e.g. `telephony.admin.v1.UserService`.
    pub service: &'static str,
    /// Method name, e.g. `GetUser`.
    pub method: &'static str,
    /// `service/method`, the span name the conventions ask for.
    pub full_name: &'static str,
}

const OTHER_METHOD: RpcMethod = RpcMethod {
    service: OTHER,
    method: OTHER,
    full_name: OTHER,
};

/// The served method an HTTP/2 path (`/package.Service/Method`) names, or [`OTHER`]: a client
/// cannot make up label values.
pub fn rpc_method(path: &str) -> RpcMethod {
    static CATALOG: OnceLock<HashMap<String, (String, String, String)>> = OnceLock::new();
    let catalog = CATALOG.get_or_init(served_methods);
    match catalog.get(path) {
        Some((service, method, full_name)) => RpcMethod {
            service,
            method,
            full_name,
        },
        None => OTHER_METHOD,
    }
}

/// Every method of the served services, from their descriptors: path → (service, method, name).
fn served_methods() -> HashMap<String, (String, String, String)> {
    let mut methods = HashMap::new();
    for encoded in [
        crate::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ] {
        let Ok(set) = prost_types::FileDescriptorSet::decode(encoded) else {
            continue;
        };
        for file in set.file {
            let package = file.package();
            for service in &file.service {
                let service_name = if package.is_empty() {
                    service.name().to_owned()
                } else {
                    format!("{package}.{}", service.name())
                };
                for method in &service.method {
                    let full_name = format!("{service_name}/{}", method.name());
                    methods.insert(
                        format!("/{full_name}"),
                        (service_name.clone(), method.name().to_owned(), full_name),
                    );
                }
            }
        }
    }
    // Reflection's descriptors are not exported by tonic-reflection; it has one method.
    for service in [
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        let full_name = format!("{service}/ServerReflectionInfo");
        methods.insert(
            format!("/{full_name}"),
            (
                service.to_owned(),
                "ServerReflectionInfo".to_owned(),
                full_name,
            ),
        );
    }
    methods
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_methods_resolve_and_others_do_not() {
        let get_user = rpc_method("/telephony.admin.v1.UserService/GetUser");
        assert_eq!(get_user.service, "telephony.admin.v1.UserService");
        assert_eq!(get_user.method, "GetUser");
        assert_eq!(get_user.full_name, "telephony.admin.v1.UserService/GetUser");
        assert_eq!(rpc_method("/grpc.health.v1.Health/Check").method, "Check");
        assert_eq!(
            rpc_method("/telephony.admin.v1.UserService/Nope"),
            OTHER_METHOD
        );
        assert_eq!(rpc_method("/9876543210"), OTHER_METHOD);
    }
}
