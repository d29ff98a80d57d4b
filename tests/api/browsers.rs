//! What a browser gets from the gRPC port: the console's files with their security headers,
//! gRPC-Web over plain HTTP/1.1 (unary and server streaming, errors with their details), CORS
//! only for the configured origins, and `GetCaller` telling a key's role and scope.

use std::time::Duration;

use prost::Message;
use telephony_admin::keys::Role;
use telephony_admin::proto::{
    ChangeKind, GetCallerRequest, GetUserRequest, LogoutUserRequest, User, WatchChangesRequest,
    WatchChangesResponse, watch_changes_response,
};
use tokio_rustls::rustls;
use tonic::Code;

use crate::common::{Backend, TestApp, account_scope, spawn_app, spawn_app_with};

const GRPC_WEB: &str = "application/grpc-web+proto";

/// A plain HTTP/1.1 client, as a browser's (over http://; its TLS is never used).
fn http1() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .http1_only()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTP client")
}

/// A gRPC-Web request's body: one uncompressed message frame.
fn frame(message: &impl Message) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&bytes);
    body
}

/// A gRPC-Web response's body: its messages, and its trailers (from the trailer frame).
fn unframe(mut body: &[u8]) -> (Vec<Vec<u8>>, Vec<(String, String)>) {
    let (mut messages, mut trailers) = (Vec::new(), Vec::new());
    while !body.is_empty() {
        let flags = body[0];
        let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let payload = &body[5..5 + length];
        if flags & 0x80 != 0 {
            for line in std::str::from_utf8(payload).unwrap().split("\r\n") {
                if let Some((name, value)) = line.split_once(':') {
                    trailers.push((name.trim().to_lowercase(), value.trim().to_owned()));
                }
            }
        } else {
            messages.push(payload.to_vec());
        }
        body = &body[5 + length..];
    }
    (messages, trailers)
}

/// A gRPC-Web answer: its messages, and its status fields (`grpc-*`), which a refusal sends in
/// the headers (trailers-only) and a success in the trailer frame.
async fn answer(response: reqwest::Response) -> (Vec<Vec<u8>>, Vec<(String, String)>) {
    let mut status: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("grpc-"))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    let (messages, trailers) = unframe(&response.bytes().await.unwrap());
    status.extend(trailers);
    (messages, status)
}

fn trailer<'t>(trailers: &'t [(String, String)], name: &str) -> Option<&'t str> {
    trailers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

async fn grpc_web_call(
    app: &TestApp,
    key: &str,
    path: &str,
    request: &impl Message,
) -> reqwest::Response {
    http1()
        .post(format!("http://{}/{path}", app.address))
        .header("content-type", GRPC_WEB)
        .header("x-grpc-web", "1")
        .header("authorization", format!("Bearer {key}"))
        .body(frame(request))
        .send()
        .await
        .expect("the server answers")
}

async fn get_user_over_grpc_web(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Web").await;
    let user = app
        .create_user(&account.account_id, "web@example.com")
        .await;

    let response = grpc_web_call(
        &app,
        &app.admin_key,
        "telephony.admin.v1.UserService/GetUser",
        &GetUserRequest {
            account_id: account.account_id.clone(),
            user_id: user.user_id.clone(),
        },
    )
    .await;
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/grpc-web"),
    );
    let (messages, trailers) = answer(response).await;
    assert_eq!(trailer(&trailers, "grpc-status"), Some("0"), "{trailers:?}");
    assert_eq!(messages.len(), 1);
    let got = User::decode(messages[0].as_slice()).expect("a User");
    assert_eq!(got.user_id, user.user_id);
    assert_eq!(got.email, "web@example.com");

    // A refusal: the code, the message and the google.rpc details, in the trailers.
    let response = grpc_web_call(
        &app,
        &app.admin_key,
        "telephony.admin.v1.UserService/GetUser",
        &GetUserRequest {
            account_id: account.account_id.clone(),
            user_id: "not a uuid".into(),
        },
    )
    .await;
    let (messages, trailers) = answer(response).await;
    assert!(messages.is_empty());
    assert_eq!(
        trailer(&trailers, "grpc-status"),
        Some((Code::InvalidArgument as i32).to_string().as_str())
    );
    assert!(trailer(&trailers, "grpc-status-details-bin").is_some());

    // Without a key: UNAUTHENTICATED, as over gRPC.
    let response = http1()
        .post(format!(
            "http://{}/telephony.admin.v1.UserService/GetUser",
            app.address
        ))
        .header("content-type", GRPC_WEB)
        .body(frame(&GetUserRequest::default()))
        .send()
        .await
        .unwrap();
    let (_, trailers) = answer(response).await;
    assert_eq!(
        trailer(&trailers, "grpc-status"),
        Some((Code::Unauthenticated as i32).to_string().as_str())
    );
}

/// Server streaming over HTTP/1.1: a change made through gRPC arrives on a gRPC-Web watch.
async fn watch_changes_over_grpc_web(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Watched").await;
    let mut response = grpc_web_call(
        &app,
        &app.admin_key,
        "telephony.admin.v1.ChangeService/WatchChanges",
        &WatchChangesRequest {
            account_id: account.account_id.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(response.status(), 200);
    let user = app
        .create_user(&account.account_id, "seen@example.com")
        .await;
    app.users()
        .logout_user(LogoutUserRequest {
            account_id: account.account_id.clone(),
            user_id: user.user_id.clone(),
        })
        .await
        .expect("signed out");

    let mut received = Vec::new();
    let event = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let chunk = response
                .chunk()
                .await
                .unwrap()
                .expect("the stream stays open");
            received.extend_from_slice(&chunk);
            // Whole frames only: a frame may span chunks.
            let mut rest = received.as_slice();
            while rest.len() >= 5 {
                let length = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
                if rest.len() < 5 + length {
                    break;
                }
                let message = WatchChangesResponse::decode(&rest[5..5 + length]).unwrap();
                if let Some(watch_changes_response::Kind::Event(event)) = message.kind {
                    return event;
                }
                rest = &rest[5 + length..];
            }
        }
    })
    .await
    .expect("the change arrives on the gRPC-Web stream");
    assert_eq!(event.user_id, user.user_id);
    assert_eq!(event.kind, ChangeKind::UserSignOutRequested as i32);
}

async fn get_caller_says_who_the_key_is(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Scoped").await;
    let viewer = app
        .create_key(Role::Viewer, account_scope(&account.account_id))
        .await;
    let caller = app
        .accounts_as(Some(&viewer))
        .get_caller(GetCallerRequest {})
        .await
        .expect("any key may ask who it is")
        .into_inner();
    assert_eq!(caller.role(), telephony_admin::proto::Role::Viewer);
    assert_eq!(caller.account_id, account.account_id);
    assert_eq!(caller.key_name, "test");
    let admin = app
        .accounts()
        .get_caller(GetCallerRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(admin.role(), telephony_admin::proto::Role::Admin);
    assert_eq!(
        admin.account_id, "",
        "the bootstrap key covers the organisation"
    );
    assert_ne!(admin.key_id, caller.key_id);
}

on_both_databases!(
    get_user_over_grpc_web,
    watch_changes_over_grpc_web,
    get_caller_says_who_the_key_is
);

#[tokio::test]
async fn the_console_is_served_with_a_strict_policy() {
    let app = spawn_app(Backend::Sqlite).await;
    let client = http1();
    let page = client
        .get(format!("http://{}/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-cache");
    let policy = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    let html = page.text().await.unwrap();
    // Every script is a file (the policy would block an inline one), and nothing is styled
    // inline.
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert!(!scripts.is_empty(), "{html}");
    for script in scripts {
        let tag = &script[..script.find('>').expect("a tag")];
        assert!(tag.contains(" src=\"/assets/"), "an inline script: {tag}");
    }
    assert!(
        !html.contains("<style") && !html.contains("style="),
        "{html}"
    );

    // HEAD: the headers, no body.
    let head = client
        .head(format!("http://{}/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.headers().contains_key("content-security-policy"));
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        html.len().to_string()
    );
    assert!(head.bytes().await.unwrap().is_empty());

    // Every file the page loads is served, with a content type and for ever (hashed names).
    let assets: Vec<&str> = html
        .split('"')
        .filter(|s| s.starts_with("/assets/"))
        .collect();
    for asset in &assets {
        let file = client
            .get(format!("http://{}{asset}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(file.status(), 200, "{asset}");
        assert!(
            file.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        assert_eq!(file.headers()["x-content-type-options"], "nosniff");
    }

    let missing = client
        .get(format!("http://{}/no/such/file.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn without_the_console_a_browser_gets_no_page() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.browser.console = false).await;
    let page = http1()
        .get(format!("http://{}/", app.address))
        .send()
        .await
        .unwrap();
    assert_ne!(page.status(), 200);
    assert!(page.headers().get("content-security-policy").is_none());
}

/// A preflight from `origin` for a gRPC-Web call; the origin it is allowed for, if any.
async fn preflight(app: &TestApp, origin: &str) -> Option<String> {
    let response = http1()
        .request(
            reqwest::Method::OPTIONS,
            format!(
                "http://{}/telephony.admin.v1.UserService/GetUser",
                app.address
            ),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web",
        )
        .send()
        .await
        .unwrap();
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn cross_origin_calls_only_from_configured_origins() {
    let closed = spawn_app(Backend::Sqlite).await;
    assert_eq!(preflight(&closed, "https://admin.example.com").await, None);

    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.browser.cors_origins = vec!["https://admin.example.com".parse().unwrap()];
    })
    .await;
    assert_eq!(
        preflight(&app, "https://admin.example.com")
            .await
            .as_deref(),
        Some("https://admin.example.com")
    );
    assert_eq!(preflight(&app, "https://evil.example.net").await, None);

    // The call itself: the browser may read its status and details.
    let account = app.create_account("Cors").await;
    let response = http1()
        .post(format!(
            "http://{}/telephony.admin.v1.UserService/GetUser",
            app.address
        ))
        .header("origin", "https://admin.example.com")
        .header("content-type", GRPC_WEB)
        .header("authorization", format!("Bearer {}", app.admin_key))
        .body(frame(&GetUserRequest {
            account_id: account.account_id,
            user_id: crate::common::fixtures::UNKNOWN_ID.into(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://admin.example.com"
    );
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains("grpc-status-details-bin"), "{exposed}");
    let (_, trailers) = answer(response).await;
    assert_eq!(
        trailer(&trailers, "grpc-status"),
        Some((Code::NotFound as i32).to_string().as_str())
    );
}
