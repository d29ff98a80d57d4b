//! The transport and its limits: TLS with a certificate made at test time, the refusal to serve
//! plaintext on a non-loopback address unless allowed, the maximum message size, the maximum
//! page size, the request deadline, the cap on watch streams per key, and HTTP/2's cap on
//! concurrent streams per connection.

use std::time::Duration;

use crate::common::{Backend, TestApp, spawn_app_with, storage_for, test_settings};
use telephony_admin::proto::{
    CreateAccountRequest, CreatePhoneNumberOrderRequest, ListAccountsRequest, ListChangesRequest,
    ListPhoneNumbersRequest, ListUsersRequest, PhoneNumberProductType, WatchChangesRequest,
    account_service_client::AccountServiceClient, change_service_client::ChangeServiceClient,
};
use telephony_admin::startup::Application;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// A self-signed certificate for `localhost`, written as PEM files into a temporary directory.
pub(crate) struct TestCertificate {
    pub cert_pem: String,
    pub cert_path: std::path::PathBuf,
    pub key_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

pub(crate) fn make_certificate() -> TestCertificate {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let dir = tempfile::tempdir().expect("temporary directory");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.pem()).expect("write cert.pem");
    std::fs::write(&key_path, signing_key.serialize_pem()).expect("write key.pem");
    TestCertificate {
        cert_pem: cert.pem(),
        cert_path,
        key_path,
        _dir: dir,
    }
}

fn with_key(key: &str) -> crate::common::Bearer {
    crate::common::Bearer(Some(format!("Bearer {key}").parse().expect("ASCII key")))
}

/// A channel of its own (one HTTP/2 connection), not shared with the harness's clients.
async fn own_channel(app: &TestApp) -> Channel {
    Channel::from_shared(format!("http://{}", app.address))
        .unwrap()
        .connect()
        .await
        .expect("connect")
}

async fn list_numbers(app: &TestApp) -> Vec<String> {
    app.all_numbers(ListPhoneNumbersRequest::default())
        .await
        .into_iter()
        .map(|n| n.e164_phone_number)
        .collect()
}

fn numbers(count: u32) -> Vec<String> {
    (0..count).map(|i| format!("+1206555{i:04}")).collect()
}

/// With a certificate and key the server speaks TLS only: a client that trusts the certificate
/// is served, a plaintext client is not.
async fn tls_serves_tls_clients_only(backend: Backend) {
    let certificate = make_certificate();
    let (cert, key) = (certificate.cert_path.clone(), certificate.key_path.clone());
    let app = spawn_app_with(backend, |s| {
        s.tls_cert = Some(cert);
        s.tls_key = Some(key);
    })
    .await;
    let port = app.address.port();

    // 127.0.0.1 rather than "localhost", which may resolve to ::1 first; the name checked
    // against the certificate is still localhost.
    let tls = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&certificate.cert_pem))
                .domain_name("localhost"),
        )
        .expect("TLS configuration")
        .connect()
        .await
        .expect("a TLS client connects");
    let mut client = AccountServiceClient::with_interceptor(tls, with_key(&app.admin_key));
    client
        .create_account(CreateAccountRequest {
            name: "Over TLS".into(),
        })
        .await
        .expect("served over TLS");
    let accounts = client
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("served over TLS")
        .into_inner()
        .accounts;
    assert_eq!(accounts.len(), 1);

    // The harness's own channel is plaintext. Its request dies in the transport; which code
    // the client reports depends on how far its HTTP/2 preface got before the server's TLS
    // alert arrived (a broken pipe, a GOAWAY, a cancelled call), so any of them will do, as
    // long as nothing was served.
    let refused = app
        .accounts()
        .create_account(CreateAccountRequest {
            name: "Over plaintext".into(),
        })
        .await
        .expect_err("plaintext is not served on a TLS port");
    assert!(
        matches!(
            refused.code(),
            Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
        ),
        "{refused:?}"
    );
    assert!(
        std::error::Error::source(&refused).is_some(),
        "a transport error, not an answer of the server: {refused:?}"
    );
    let accounts = client
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("served over TLS")
        .into_inner()
        .accounts;
    assert_eq!(accounts.len(), 1, "the plaintext request was not served");

    // A client that trusts another certificate refuses the handshake.
    let untrusting = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(make_certificate().cert_pem))
                .domain_name("localhost"),
        )
        .expect("TLS configuration")
        .connect()
        .await
        .expect_err("a certificate the client does not trust");
    assert!(
        format!("{untrusting:?}").contains("InvalidCertificate"),
        "{untrusting:?}"
    );
}

/// Plaintext on a non-loopback address needs an explicit flag; with it, the server starts.
async fn plaintext_beyond_loopback_needs_the_flag(backend: Backend) {
    let database = crate::common::TestDatabase::create(backend).await;
    let mut settings = test_settings();
    settings.listen = "0.0.0.0:0".parse().unwrap();
    let error = match Application::build(&storage_for(&database.url), settings).await {
        Ok(_) => panic!("plaintext on 0.0.0.0 started without the flag"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("--allow-plaintext-non-loopback"),
        "the error names the flag: {error}"
    );
    assert!(error.contains("--tls-cert"), "and the TLS flags: {error}");

    let app = crate::common::spawn_app_on(database, |s| {
        s.listen = "0.0.0.0:0".parse().unwrap();
        s.allow_plaintext_non_loopback = true;
    })
    .await;
    assert!(app.address.ip().is_unspecified());
    app.create_account("Reachable").await;
}

/// Requests above the configured size are RESOURCE_EXHAUSTED (not tonic's OUT_OF_RANGE), on
/// unary and streaming RPCs alike; small requests are unaffected and nothing is stored.
async fn oversized_messages_are_resource_exhausted(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_message_bytes = 1024).await;
    // 100 numbers of 12 characters: about 1.4 KB encoded.
    let big = CreatePhoneNumberOrderRequest {
        product_type: PhoneNumberProductType::BusinessCalling as i32,
        e164_phone_numbers: numbers(100),
    };
    let refused = app
        .numbers()
        .create_phone_number_order(big)
        .await
        .expect_err("an oversized message");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("1024"),
        "the message gives the limit: {refused:?}"
    );
    assert!(list_numbers(&app).await.is_empty());

    let refused = app
        .changes()
        .watch_changes(WatchChangesRequest {
            account_id: "x".repeat(2000),
            ..Default::default()
        })
        .await
        .expect_err("an oversized streaming request");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");

    let order = app
        .numbers()
        .create_phone_number_order(CreatePhoneNumberOrderRequest {
            product_type: PhoneNumberProductType::BusinessCalling as i32,
            e164_phone_numbers: numbers(10),
        })
        .await
        .expect("a small order")
        .into_inner();
    assert_eq!(order.ordered_phone_numbers.len(), 10);
    assert_eq!(list_numbers(&app).await, numbers(10));
}

/// A page size above the configured maximum is INVALID_ARGUMENT on every list; the maximum
/// itself is fine, and the default page shrinks to it.
async fn page_size_is_capped(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_page_size = 10).await;
    let mut account_id = String::new();
    for i in 0..12 {
        account_id = app
            .create_account(&format!("Account {i:02}"))
            .await
            .account_id;
    }

    let refusals = [
        app.accounts()
            .list_accounts(ListAccountsRequest {
                page_size: 11,
                ..Default::default()
            })
            .await
            .map(drop),
        app.users()
            .list_users(ListUsersRequest {
                account_id: account_id.clone(),
                page_size: 11,
                ..Default::default()
            })
            .await
            .map(drop),
        app.numbers()
            .list_phone_numbers(ListPhoneNumbersRequest {
                page_size: 11,
                ..Default::default()
            })
            .await
            .map(drop),
        app.changes()
            .list_changes(ListChangesRequest {
                page_size: 11,
                ..Default::default()
            })
            .await
            .map(drop),
    ];
    for refused in refusals {
        let refused = refused.expect_err("page_size above the maximum");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains("at most 10"), "{refused:?}");
    }

    for page_size in [10, 0] {
        let page = app
            .accounts()
            .list_accounts(ListAccountsRequest {
                page_size,
                ..Default::default()
            })
            .await
            .expect("page_size within the maximum")
            .into_inner();
        assert_eq!(page.accounts.len(), 10, "page_size {page_size}");
        assert!(!page.next_page_token.is_empty());
    }
    // Other requests are unaffected.
    app.create_user(&account_id, "ann@example.com").await;
}

/// A request that takes longer than the deadline is DEADLINE_EXCEEDED, every time, and its
/// work is rolled back: a second server on the same database (with the default deadline) sees
/// none of the numbers.
async fn slow_requests_exceed_the_deadline(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.request_timeout = Duration::from_millis(1)).await;
    // Parsing and inserting 1000 numbers takes far longer than 1 ms.
    for attempt in 0..5 {
        let refused = app
            .numbers()
            .create_phone_number_order(CreatePhoneNumberOrderRequest {
                product_type: PhoneNumberProductType::BusinessCalling as i32,
                e164_phone_numbers: numbers(1000),
            })
            .await
            .expect_err("1000 numbers within 1 ms");
        assert_eq!(
            refused.code(),
            Code::DeadlineExceeded,
            "attempt {attempt}: {refused:?}"
        );
        assert!(
            refused.message().contains("1 ms"),
            "the message gives the deadline: {refused:?}"
        );
    }
    let replica = app.spawn_replica().await;
    assert!(
        list_numbers(&replica).await.is_empty(),
        "an order cut off by the deadline left numbers behind"
    );
}

/// One key may hold at most the configured number of watch streams; another key is not
/// affected, and closing a stream frees its slot.
async fn watch_streams_per_key_are_capped(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_watchers_per_key = 1).await;
    let first = app
        .changes()
        .watch_changes(WatchChangesRequest::default())
        .await
        .expect("the first watch")
        .into_inner();
    let refused = app
        .changes()
        .watch_changes(WatchChangesRequest::default())
        .await
        .expect_err("a second watch of the same key");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("close one"), "{refused:?}");

    let other_key = app
        .create_key(
            telephony_admin::keys::Role::Viewer,
            telephony_admin::keys::Scope::Organisation,
        )
        .await;
    let _other = app
        .changes_as(Some(&other_key))
        .watch_changes(WatchChangesRequest::default())
        .await
        .expect("another key has slots of its own");

    // The slot is freed once the server sees the stream go; poll, bounded.
    drop(first);
    let reopened = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match app
                .changes()
                .watch_changes(WatchChangesRequest::default())
                .await
            {
                Ok(stream) => return stream,
                Err(status) if status.code() == Code::ResourceExhausted => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(status) => panic!("unexpected refusal: {status:?}"),
            }
        }
    })
    .await
    .expect("the slot is freed after the stream closes");
    drop(reopened);
}

/// With at most 2 concurrent streams per connection, a third stream on the same connection is
/// queued by the client (HTTP/2 flow control, not an error) until one of the two closes; a
/// second connection is served at once.
async fn streams_beyond_the_connection_limit_wait(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.max_concurrent_streams = 2).await;
    let channel = own_channel(&app).await;
    let client = ChangeServiceClient::with_interceptor(channel, with_key(&app.admin_key));
    let first = client
        .clone()
        .watch_changes(WatchChangesRequest::default())
        .await
        .expect("stream 1")
        .into_inner();
    let _second = client
        .clone()
        .watch_changes(WatchChangesRequest::default())
        .await
        .expect("stream 2")
        .into_inner();

    let mut third = tokio::spawn({
        let mut client = client.clone();
        async move {
            client
                .watch_changes(WatchChangesRequest::default())
                .await
                .map(|_| ())
        }
    });
    // While two streams are open the third cannot start (this window can only make the test
    // pass wrongly on a slow machine, never fail it wrongly).
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut third)
            .await
            .is_err(),
        "a third stream was served while two were open"
    );
    // Another connection is not affected.
    let elsewhere = own_channel(&app).await;
    AccountServiceClient::with_interceptor(elsewhere, with_key(&app.admin_key))
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("another connection is served");

    drop(first);
    tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("the third stream starts once one closes")
        .expect("task")
        .expect("the third stream is served");
}

on_both_databases!(
    tls_serves_tls_clients_only,
    plaintext_beyond_loopback_needs_the_flag,
    oversized_messages_are_resource_exhausted,
    page_size_is_capped,
    slow_requests_exceed_the_deadline,
    watch_streams_per_key_are_capped,
    streams_beyond_the_connection_limit_wait,
);
