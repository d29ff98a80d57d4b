//! `WebhookService` through the public API: create, get, list, update, delete and secret rotation;
//! validation of URLs (schemes, credentials, private and loopback targets, checked after name
//! resolution), filters and masks; and who may manage webhooks (organisation admin keys only).
//! Also the shared helpers of the delivery scenarios.

use std::time::Duration;

use telephony_admin::config::ServeSettings;
use telephony_admin::keys::{Role, Scope};
use telephony_admin::proto::{
    ChangeKind, CreateWebhookRequest, CreateWebhookResponse, DeleteWebhookRequest,
    GetWebhookRequest, ListWebhooksRequest, LogoutUserRequest, RotateWebhookSecretRequest,
    UpdateWebhookRequest, Webhook, WebhookFilter, WebhookState,
    webhook_service_client::WebhookServiceClient,
};
use tonic::{Code, Status};

use crate::common::account_scope;
use crate::common::fixtures::{UNKNOWN_ID, mask};
use crate::common::http_receiver::{Mode, Receiver};
use crate::common::{Authed, Backend, Bearer, TestApp, spawn_app, spawn_app_with};

/// Deliveries that retry fast and let webhooks call the loopback receiver.
pub fn fast_delivery(settings: &mut ServeSettings) {
    settings.webhook_allow_insecure = true;
    settings.delivery_timeout = Duration::from_secs(1);
    settings.delivery_retry_min = Duration::from_millis(50);
    settings.delivery_retry_max = Duration::from_millis(400);
    settings.delivery_lease = Duration::from_secs(4);
}

pub fn webhooks_as(app: &TestApp, key: Option<&str>) -> WebhookServiceClient<Authed> {
    WebhookServiceClient::with_interceptor(
        app.channel.clone(),
        Bearer(key.map(|k| format!("Bearer {k}").parse().expect("ASCII key"))),
    )
}

pub fn webhooks(app: &TestApp) -> WebhookServiceClient<Authed> {
    webhooks_as(app, Some(&app.admin_key))
}

pub fn request(url: &str) -> CreateWebhookRequest {
    CreateWebhookRequest {
        url: url.into(),
        description: "test receiver".into(),
        filter: None,
    }
}

pub async fn try_create(
    app: &TestApp,
    request: CreateWebhookRequest,
) -> Result<CreateWebhookResponse, Status> {
    webhooks(app)
        .create_webhook(request)
        .await
        .map(|r| r.into_inner())
}

/// Creates a webhook to `receiver` and makes the receiver trust its secret.
pub async fn create_for(
    app: &TestApp,
    receiver: &Receiver,
    filter: Option<WebhookFilter>,
) -> Webhook {
    let created = try_create(
        app,
        CreateWebhookRequest {
            filter,
            ..request(&receiver.url())
        },
    )
    .await
    .unwrap_or_else(|s| panic!("create webhook: {s:?}"));
    receiver.trust(&created.secret);
    created.webhook.expect("the created webhook")
}

pub async fn get(app: &TestApp, id: &str) -> Webhook {
    webhooks(app)
        .get_webhook(GetWebhookRequest {
            webhook_id: id.into(),
        })
        .await
        .unwrap_or_else(|s| panic!("get webhook: {s:?}"))
        .into_inner()
}

/// An account with one user, for producing change events.
pub async fn account_and_user(app: &TestApp, name: &str) -> (String, String) {
    let account = app.create_account(name).await.account_id;
    let user = app
        .create_user(&account, &format!("{}@example.com", name.to_lowercase()))
        .await
        .user_id;
    (account, user)
}

/// Asks the user to sign out `count` times: one USER_SIGN_OUT_REQUESTED event each. Returns the
/// sequences.
pub async fn sign_outs(app: &TestApp, account: &str, user: &str, count: usize) -> Vec<u64> {
    let mut users = app.users();
    let mut sequences = Vec::with_capacity(count);
    for _ in 0..count {
        let sequence = users
            .logout_user(LogoutUserRequest {
                account_id: account.into(),
                user_id: user.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("logout user: {s:?}"))
            .into_inner()
            .sequence;
        sequences.push(sequence);
    }
    sequences
}

/// Waits until `check` holds for the webhook.
pub async fn wait_until(
    app: &TestApp,
    id: &str,
    what: &str,
    check: impl Fn(&Webhook) -> bool,
) -> Webhook {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let webhook = get(app, id).await;
        if check(&webhook) {
            return webhook;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the webhook never became {what}: {webhook:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_invalid(result: Result<CreateWebhookResponse, Status>, field: &str, case: &str) {
    let status = result.expect_err(case);
    assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
    assert!(status.message().contains(field), "{case}: {status:?}");
}

async fn crud_and_secret_rotation(backend: Backend) {
    let app = spawn_app_with(backend, fast_delivery).await;
    let (account, user) = account_and_user(&app, "Acme").await;
    let before = sign_outs(&app, &account, &user, 2).await;
    let mut receiver = Receiver::start(Mode::Accept).await;

    let created = try_create(&app, request(&receiver.url())).await.unwrap();
    assert!(created.secret.starts_with("whsec_"), "{}", created.secret);
    let webhook = created.webhook.clone().unwrap();
    assert_eq!(webhook.url, receiver.url());
    assert_eq!(webhook.description, "test receiver");
    assert_eq!(webhook.state, WebhookState::Active as i32);
    // A new webhook starts after the last committed event.
    assert_eq!(webhook.delivered_through_sequence, before[1]);
    assert_eq!(webhook.last_delivered_sequence, 0);
    assert_eq!(webhook.pending_events, 0);
    assert!(webhook.last_error.is_empty());
    assert_eq!(get(&app, &webhook.webhook_id).await, webhook);

    // The secret is never shown again: Get and List carry none (there is no field for it).
    receiver.trust(&created.secret);
    let delivered = sign_outs(&app, &account, &user, 1).await;
    receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(receiver.sequences(), delivered);
    let shown = wait_until(&app, &webhook.webhook_id, "delivered", |w| {
        w.last_delivered_sequence == delivered[0]
    })
    .await;
    assert_eq!(shown.delivered_through_sequence, delivered[0]);
    assert_eq!(shown.pending_events, 0);

    // List pages through every webhook in creation order.
    let second = try_create(&app, request("http://127.0.0.1:9/second"))
        .await
        .unwrap();
    let third = try_create(&app, request("http://127.0.0.1:9/third"))
        .await
        .unwrap();
    let mut client = webhooks(&app);
    let first_page = client
        .list_webhooks(ListWebhooksRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first_page.webhooks.len(), 2);
    assert!(!first_page.next_page_token.is_empty());
    let second_page = client
        .list_webhooks(ListWebhooksRequest {
            page_size: 2,
            page_token: first_page.next_page_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(second_page.next_page_token.is_empty());
    let listed: Vec<String> = first_page
        .webhooks
        .iter()
        .chain(&second_page.webhooks)
        .map(|w| w.webhook_id.clone())
        .collect();
    assert_eq!(
        listed,
        vec![
            webhook.webhook_id.clone(),
            second.webhook.unwrap().webhook_id,
            third.webhook.clone().unwrap().webhook_id
        ]
    );
    let bad_token = client
        .list_webhooks(ListWebhooksRequest {
            page_size: 2,
            page_token: "garbage".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_token.code(), Code::InvalidArgument);

    // Update only what the mask names.
    let updated = client
        .update_webhook(UpdateWebhookRequest {
            webhook_id: webhook.webhook_id.clone(),
            description: "renamed".into(),
            url: "ignored because not in the mask".into(),
            filter: Some(WebhookFilter {
                account_id: account.clone(),
                kinds: vec![ChangeKind::UserSignOutRequested as i32],
            }),
            paused: false,
            update_mask: Some(mask(&["description", "filter"])),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.description, "renamed");
    assert_eq!(updated.url, receiver.url());
    let filter = updated.filter.clone().unwrap();
    assert_eq!(filter.account_id, account);
    assert_eq!(filter.kinds, vec![ChangeKind::UserSignOutRequested as i32]);

    // Pausing stops delivery; events wait, counted as pending.
    let paused = client
        .update_webhook(UpdateWebhookRequest {
            webhook_id: webhook.webhook_id.clone(),
            paused: true,
            update_mask: Some(mask(&["paused"])),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paused.state, WebhookState::Paused as i32);
    let waiting = sign_outs(&app, &account, &user, 2).await;
    let shown = get(&app, &webhook.webhook_id).await;
    assert_eq!(shown.pending_events, 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        receiver.sequences(),
        delivered,
        "nothing is delivered while paused"
    );

    // Rotation: a new secret; the receiver that knows only the new one verifies deliveries.
    let rotated = client
        .rotate_webhook_secret(RotateWebhookSecretRequest {
            webhook_id: webhook.webhook_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rotated.secret.starts_with("whsec_"));
    assert_ne!(rotated.secret, created.secret);
    receiver.down().await;
    let mut fresh = Receiver::start(Mode::Accept).await;
    drop(receiver);
    fresh.trust(&rotated.secret);
    client
        .update_webhook(UpdateWebhookRequest {
            webhook_id: webhook.webhook_id.clone(),
            url: fresh.url(),
            paused: false,
            update_mask: Some(mask(&["url", "paused"])),
            ..Default::default()
        })
        .await
        .unwrap();
    fresh.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(
        fresh.sequences(),
        waiting,
        "resumed from the cursor, in order"
    );
    assert!(fresh.bad_signatures().is_empty());

    // The previous secret still signs during the rotation window.
    let old_only = Receiver::start(Mode::Accept).await;
    old_only.trust(&created.secret);
    client
        .update_webhook(UpdateWebhookRequest {
            webhook_id: webhook.webhook_id.clone(),
            url: old_only.url(),
            update_mask: Some(mask(&["url"])),
            ..Default::default()
        })
        .await
        .unwrap();
    let later = sign_outs(&app, &account, &user, 1).await;
    old_only.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(old_only.sequences(), later);
    fresh.down().await;

    // Delete: gone, and a second delete is NOT_FOUND.
    client
        .delete_webhook(DeleteWebhookRequest {
            webhook_id: webhook.webhook_id.clone(),
        })
        .await
        .unwrap();
    let gone = client
        .get_webhook(GetWebhookRequest {
            webhook_id: webhook.webhook_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let again = client
        .delete_webhook(DeleteWebhookRequest {
            webhook_id: webhook.webhook_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    let unknown = client
        .rotate_webhook_secret(RotateWebhookSecretRequest {
            webhook_id: UNKNOWN_ID.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

async fn refuses_bad_urls_private_targets_and_unknown_kinds(backend: Backend) {
    // The default policy: https only, public addresses only.
    let app = spawn_app(backend).await;
    for (url, case) in [
        ("", "empty"),
        ("not a url", "not a URL"),
        ("hooks.example.com/in", "relative"),
        ("ftp://hooks.example.com/in", "another scheme"),
        ("http://hooks.example.com/in", "plain http"),
        ("https://user:pw@hooks.example.com/in", "credentials"),
        ("https://hooks.example.com/in#x", "fragment"),
        ("https://127.0.0.1/in", "loopback"),
        ("https://[::1]/in", "IPv6 loopback"),
        ("https://10.0.0.7/in", "private"),
        ("https://169.254.169.254/latest", "link-local"),
        (
            "https://localhost:8443/in",
            "a name that resolves to loopback",
        ),
    ] {
        assert_invalid(try_create(&app, request(url)).await, "url", case);
    }
    let long = format!("https://hooks.example.com/{}", "x".repeat(2100));
    assert_invalid(try_create(&app, request(&long)).await, "url", "too long");

    let with_filter = |account_id: &str, kinds: Vec<i32>| CreateWebhookRequest {
        filter: Some(WebhookFilter {
            account_id: account_id.into(),
            kinds,
        }),
        ..request("https://127.0.0.1/in")
    };
    // Several bad fields are reported together.
    let status = try_create(&app, with_filter("not-a-uuid", vec![99, 0]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // With --webhook-allow-insecure, plain http and loopback are fine, but filters still count.
    let lax = spawn_app_with(backend, fast_delivery).await;
    let created = try_create(&lax, request("http://127.0.0.1:9/in"))
        .await
        .unwrap();
    assert!(created.webhook.is_some());
    let kinds = try_create(
        &lax,
        with_filter("", vec![ChangeKind::UserDeleted as i32, 42]),
    )
    .await
    .unwrap_err();
    assert_eq!(kinds.code(), Code::InvalidArgument);
    assert!(kinds.message().contains("filter.kinds[1]"), "{kinds:?}");
    let unspecified = try_create(&lax, with_filter("", vec![ChangeKind::Unspecified as i32]))
        .await
        .unwrap_err();
    assert_eq!(unspecified.code(), Code::InvalidArgument);
    let account = try_create(&lax, with_filter("not-a-uuid", vec![]))
        .await
        .unwrap_err();
    assert_eq!(account.code(), Code::InvalidArgument);
    assert!(
        account.message().contains("filter.account_id"),
        "{account:?}"
    );
    let missing = try_create(&lax, with_filter(UNKNOWN_ID, vec![]))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let described = try_create(
        &lax,
        CreateWebhookRequest {
            description: "d".repeat(201),
            ..request("http://127.0.0.1:9/in")
        },
    )
    .await;
    assert_invalid(described, "description", "description too long");
    let mut client = webhooks(&lax);
    let bad_mask = client
        .update_webhook(UpdateWebhookRequest {
            webhook_id: created.webhook.unwrap().webhook_id,
            update_mask: Some(mask(&["secret"])),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_mask.code(), Code::InvalidArgument);
    let bad_id = client
        .get_webhook(GetWebhookRequest {
            webhook_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument);
}

async fn only_organisation_admin_keys_manage_webhooks(backend: Backend) {
    let app = spawn_app_with(backend, fast_delivery).await;
    let account = app.create_account("Acme").await.account_id;
    let created = try_create(&app, request("http://127.0.0.1:9/in"))
        .await
        .unwrap()
        .webhook
        .unwrap();
    let viewer = app.create_key(Role::Viewer, Scope::Organisation).await;
    let account_admin = app.create_key(Role::Admin, account_scope(&account)).await;
    for (key, code) in [
        (Some(viewer.as_str()), Code::PermissionDenied),
        (Some(account_admin.as_str()), Code::PermissionDenied),
        (None, Code::Unauthenticated),
        (Some("tak_unknown"), Code::Unauthenticated),
    ] {
        let mut client = webhooks_as(&app, key);
        let create = client
            .create_webhook(request("http://127.0.0.1:9/in"))
            .await
            .unwrap_err();
        assert_eq!(create.code(), code, "create with {key:?}");
        let get = client
            .get_webhook(GetWebhookRequest {
                webhook_id: created.webhook_id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(get.code(), code, "get with {key:?}");
        let list = client
            .list_webhooks(ListWebhooksRequest::default())
            .await
            .unwrap_err();
        assert_eq!(list.code(), code, "list with {key:?}");
        let rotate = client
            .rotate_webhook_secret(RotateWebhookSecretRequest {
                webhook_id: created.webhook_id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(rotate.code(), code, "rotate with {key:?}");
        let delete = client
            .delete_webhook(DeleteWebhookRequest {
                webhook_id: created.webhook_id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(delete.code(), code, "delete with {key:?}");
    }
    // Still there.
    assert_eq!(
        get(&app, &created.webhook_id).await.webhook_id,
        created.webhook_id
    );
}

on_both_databases!(
    crud_and_secret_rotation,
    refuses_bad_urls_private_targets_and_unknown_kinds,
    only_organisation_admin_keys_manage_webhooks,
);
