//! Credentials on the wire: `authorization` must be a bearer token, while health checking and
//! reflection need no key at all.

use super::table::Service;
use crate::common::{Backend, Bearer, spawn_app};
use telephony_admin::proto::{
    CreateAccountRequest, ListAccountsRequest, account_service_client::AccountServiceClient,
};
use tonic::Code;

/// The `authorization` metadata must be `Bearer <key>`; anything else is UNAUTHENTICATED.
async fn authorization_must_be_a_bearer_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let secret = app.admin_key.clone();
    let client = |value: String| {
        AccountServiceClient::with_interceptor(
            app.channel.clone(),
            Bearer(Some(value.parse().expect("ASCII metadata"))),
        )
    };
    for value in [
        secret.clone(),
        format!("Basic {secret}"),
        format!("Token {secret}"),
        format!("Bearer{secret}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Bearer {}", "x".repeat(300)),
        format!("{secret} Bearer"),
    ] {
        let refused = client(value.clone())
            .create_account(CreateAccountRequest {
                name: "Never".into(),
            })
            .await
            .expect_err("not a bearer token");
        assert_eq!(
            refused.code(),
            Code::Unauthenticated,
            "{value:?}: {refused:?}"
        );
        assert!(
            refused.message().contains("Bearer"),
            "the message says what to send: {refused:?}"
        );
    }
    // The control: the same secret as a bearer token works.
    client(format!("Bearer {secret}"))
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("a bearer token works");
    let accounts = app.all_accounts().await;
    assert!(accounts.is_empty(), "a refused call created {accounts:?}");
}

/// The names of the services that reflection `$version` (`v1` or `v1alpha`: the same messages in
/// two packages) lists, asked without a key.
macro_rules! reflected_services {
    ($app:expr, $version:ident) => {{
        use tonic_reflection::pb::$version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let version = stringify!($version);
        let mut client = ServerReflectionClient::new($app.channel.clone());
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = client
            .server_reflection_info(tokio_stream::once(request))
            .await
            .unwrap_or_else(|s| panic!("reflection {version} without a key: {s:?}"))
            .into_inner();
        let answer = stream
            .message()
            .await
            .unwrap_or_else(|s| panic!("{version} answer: {s:?}"))
            .expect("one message");
        match answer.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
            }
            other => panic!("unexpected {version} reflection answer {other:?}"),
        }
    }};
}

/// Health checking and both reflection versions answer without a key.
async fn health_and_reflection_need_no_key(backend: Backend) {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let app = spawn_app(backend).await;

    let mut health = HealthClient::new(app.channel.clone());
    for service in [
        "",
        "telephony.admin.v1.AccountService",
        "telephony.admin.v1.ChangeService",
    ] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("health of {service:?} without a key: {s:?}"))
            .into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32, "{service:?}");
    }

    let services = reflected_services!(app, v1);
    let services_alpha = reflected_services!(app, v1alpha);
    for listed in [&services, &services_alpha] {
        for service in [
            Service::Account,
            Service::User,
            Service::PhoneNumber,
            Service::Telephony,
            Service::Change,
            Service::Webhook,
        ] {
            assert!(
                listed.iter().any(|s| s == service.full_name()),
                "{} missing from {listed:?}",
                service.full_name()
            );
        }
    }

    // The control: the API itself needs a key on the same channel.
    let refused = app
        .accounts_as(None)
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect_err("the API needs a key");
    assert_eq!(refused.code(), Code::Unauthenticated);
}

on_both_databases!(
    authorization_must_be_a_bearer_token,
    health_and_reflection_need_no_key,
);
