//! The router: every gRPC service with its limits, health and reflection, behind the
//! per-RPC layers (tracing, metrics, in-flight count, limits); gRPC-Web and CORS for browsers in
//! front of them, and the console's files in front of all.

use std::convert::Infallible;
use std::sync::Arc;

use tonic::body::Body;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::api::{
    ApiContext,
    accounts::AccountApi,
    changes::ChangeApi,
    emergency_locations::EmergencyLocationApi,
    in_flight::{InFlight, InFlightLayer},
    limits::LimitsLayer,
    phone_numbers::PhoneNumberApi,
    telephony::TelephonyApi,
    users::UserApi,
    webhooks::WebhookApi,
};
use crate::config::ServeSettings;
use crate::proto::{
    self, account_service_server::AccountServiceServer, change_service_server::ChangeServiceServer,
    emergency_location_service_server::EmergencyLocationServiceServer,
    phone_number_service_server::PhoneNumberServiceServer,
    telephony_service_server::TelephonyServiceServer, user_service_server::UserServiceServer,
    webhook_service_server::WebhookServiceServer,
};
use crate::telemetry::{RpcMetricsLayer, rpc_trace_layer};

use super::console::WithConsole;

/// Server reflection, v1 and (for grpcurl before 1.8.8) v1alpha, over our services and the
/// google.rpc types too, so that grpcurl can show error details.
fn reflection_services() -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
)> {
    let configure = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    Ok((configure().build_v1()?, configure().build_v1alpha()?))
}

/// What the router serves besides reflection.
pub(super) struct Routes<H> {
    pub(super) context: Arc<ApiContext>,
    pub(super) health_service: H,
    pub(super) in_flight: InFlight,
}

/// Every service behind the layers (in-flight count, trace, metrics, limits).
pub(super) fn router(
    settings: &ServeSettings,
    Routes {
        context,
        health_service,
        in_flight,
    }: Routes<
        tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
    >,
) -> anyhow::Result<
    impl Service<
        http::Request<Body>,
        Response = http::Response<Body>,
        Error = Infallible,
        Future: Send + Unpin + 'static,
    > + Clone
    + Send
    + 'static,
> {
    let max_message = settings.max_message_bytes;
    let (reflection_v1, reflection_v1alpha) = reflection_services()?;
    let routes = tonic::service::Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            AccountServiceServer::new(AccountApi {
                context: context.clone(),
            })
            .max_decoding_message_size(max_message),
        )
        .add_service(
            UserServiceServer::new(UserApi {
                context: context.clone(),
            })
            .max_decoding_message_size(max_message),
        )
        .add_service(
            PhoneNumberServiceServer::new(PhoneNumberApi {
                context: context.clone(),
            })
            .max_decoding_message_size(max_message),
        )
        .add_service(
            TelephonyServiceServer::new(TelephonyApi {
                context: context.clone(),
            })
            .max_decoding_message_size(max_message),
        )
        .add_service(
            WebhookServiceServer::new(WebhookApi {
                context: context.clone(),
                policy: crate::domain::webhook::TargetPolicy {
                    allow_insecure: settings.webhook_allow_insecure,
                },
            })
            .max_decoding_message_size(max_message),
        )
        .add_service(
            EmergencyLocationServiceServer::new(EmergencyLocationApi {
                context: context.clone(),
                validator: Arc::new(crate::domain::emergency::OfflineValidator),
            })
            .max_decoding_message_size(max_message),
        )
        .add_service(
            ChangeServiceServer::new(ChangeApi { context }).max_decoding_message_size(max_message),
        )
        .prepare();
    // Metrics are recorded only when they are served.
    let rpc_metrics = settings.metrics_listen.map(|_| RpcMetricsLayer);
    let layered = ServiceBuilder::new()
        .layer(InFlightLayer(in_flight))
        .layer(rpc_trace_layer())
        .option_layer(rpc_metrics)
        .layer(LimitsLayer {
            request_timeout: settings.request_timeout,
        })
        .service(routes);
    // One body type for every response, as tonic's server had it.
    let api = ServiceExt::<http::Request<Body>>::map_response(layered, |response| {
        response.map(Body::new)
    });
    // Browsers: gRPC-Web translated to gRPC before any layer sees it, allowed to the configured
    // other origins, and the console's files in front.
    let browsers = ServiceBuilder::new()
        .option_layer(cors(&settings.browser.cors_origins))
        .layer(tonic_web::GrpcWebLayer::new())
        .service(api);
    let browsers = ServiceExt::<http::Request<Body>>::map_response(browsers, |response| {
        response.map(Body::new)
    });
    Ok(WithConsole {
        api: browsers,
        enabled: settings.browser.console,
    })
}

/// CORS for gRPC-Web from `origins` (none: no cross-origin call is allowed).
fn cors(origins: &[http::HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let header = http::HeaderName::from_static;
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([http::Method::POST])
            .allow_headers([
                http::header::AUTHORIZATION,
                http::header::CONTENT_TYPE,
                header("x-grpc-web"),
                header("x-user-agent"),
                header("grpc-timeout"),
            ])
            .expose_headers([
                header("grpc-status"),
                header("grpc-message"),
                header("grpc-status-details-bin"),
            ])
            .max_age(std::time::Duration::from_secs(24 * 60 * 60)),
    )
}
