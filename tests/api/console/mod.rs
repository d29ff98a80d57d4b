//! The administrator's console in a real browser (headless Chromium through chromedriver),
//! against a real server on a fresh database: the flows of the console guide, each checked
//! against what the API then says.

mod browser;

use std::time::Duration;

use telephony_admin::keys::{Role, Scope};
use telephony_admin::proto::GetTelephonySettingsRequest;

use crate::common::fixtures::number;
use crate::common::{Backend, TestApp, spawn_app};
use browser::{Browser, hook};

async fn settings_of(app: &TestApp, account_id: &str, user_id: &str) -> (bool, bool, bool) {
    let s = app
        .telephony()
        .get_telephony_settings(GetTelephonySettingsRequest {
            account_id: account_id.into(),
            user_id: user_id.into(),
        })
        .await
        .expect("the settings")
        .into_inner();
    (s.inbound_calling, s.outbound_calling, s.sms)
}

async fn sign_in(browser: &Browser, app: &TestApp, key: &str, role: &str) {
    browser.goto(&format!("http://{}/", app.address)).await;
    browser.type_into("signin-key", key).await;
    browser.click("signin-submit").await;
    browser.until_text("caller-role", role).await;
}

/// Whether the permission checkbox is ticked.
async fn ticked(browser: &Browser, setting: &str) -> bool {
    browser
        .find(&format!("setting-{setting}"))
        .await
        .is_selected()
        .await
        .expect("a checkbox")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    browser_tests_skipped,
    ignore = "chromium and chromedriver are not installed"
)]
async fn an_administrator_assigns_edits_and_unassigns_in_the_browser() {
    let app = spawn_app(Backend::Sqlite).await;
    let account = app.create_account("Acme").await;
    let account_id = account.account_id.clone();
    app.order_business_numbers(&[number(10), number(11), number(12)])
        .await;
    let browser = Browser::start().await;

    // Sign in: the key's role and scope are shown.
    sign_in(&browser, &app, &app.admin_key, "admin").await;
    assert_eq!(browser.text("caller-scope").await, "organisation");
    browser.settled().await;
    browser.screenshot("accounts").await;

    // Create a user in the account's page.
    browser
        .goto(&format!(
            "http://{}/#/accounts/{account_id}/users",
            app.address
        ))
        .await;
    browser
        .type_into("create-user-email", "ada@example.com")
        .await;
    browser.type_into("create-user-display-name", "Ada").await;
    browser.click("create-user-submit").await;
    let row = browser
        .until(&format!(
            r#"{}[data-email="ada@example.com"]"#,
            hook("user-row")
        ))
        .await;
    let user_id = row.attr("data-user-id").await.unwrap().expect("its id");
    assert_eq!(
        app.get_user(&account_id, &user_id).await.display_name,
        "Ada"
    );
    browser.settled().await;
    browser.screenshot("users").await;

    // Assign a number from the unassigned inventory: calling and SMS are off.
    browser
        .goto(&format!(
            "http://{}/#/accounts/{account_id}/users/{user_id}",
            app.address
        ))
        .await;
    browser.click("assign-number").await;
    browser.type_into("picker-search", &number(11)).await;
    browser.click("picker-apply").await;
    browser.settled().await;
    let choice = browser
        .until(&format!(
            r#"{}[data-e164="{}"] {}"#,
            hook("picker-row"),
            number(11),
            hook("picker-choose")
        ))
        .await;
    choice.click().await.expect("chosen");
    browser
        .until(&format!(
            r#"{}[data-e164="{}"]"#,
            hook("user-phone-number"),
            number(11)
        ))
        .await;
    browser.settled().await;
    for setting in ["inbound_calling", "outbound_calling", "sms"] {
        assert!(!ticked(&browser, setting).await, "{setting} is off");
    }
    assert_eq!(
        app.get_user(&account_id, &user_id)
            .await
            .primary_phone_number,
        number(11)
    );
    assert_eq!(
        settings_of(&app, &account_id, &user_id).await,
        (false, false, false)
    );

    // Turn SMS on: saved alone, through the field mask.
    browser.click("setting-sms").await;
    browser.settled().await;
    assert!(ticked(&browser, "sms").await);
    assert_eq!(
        settings_of(&app, &account_id, &user_id).await,
        (false, false, true)
    );
    browser.screenshot("user").await;

    // Unassign: nothing happens until it is confirmed.
    browser.click("unassign-number").await;
    browser
        .until(&format!("{}[open]", hook("unassign-dialog")))
        .await;
    browser.screenshot("unassign-confirmation").await;
    browser.click("unassign-cancel").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.get_user(&account_id, &user_id)
            .await
            .primary_phone_number,
        number(11),
        "cancelled: still assigned"
    );
    browser.click("unassign-number").await;
    browser.click("unassign-confirm").await;
    browser
        .until(&format!(r#"{}[data-e164=""]"#, hook("user-phone-number")))
        .await;
    assert_eq!(
        app.get_user(&account_id, &user_id)
            .await
            .primary_phone_number,
        ""
    );

    // A change made by another client appears without a reload, and is counted.
    browser
        .until(&format!(r#"{}[data-state="live"]"#, hook("live-status")))
        .await;
    let seen: u64 = browser
        .attr("live-counter", "data-count")
        .await
        .expect("a count")
        .parse()
        .unwrap();
    app.assign(&account_id, &user_id, &number(12))
        .await
        .expect("assigned over gRPC");
    browser
        .until(&format!(
            r#"{}[data-e164="{}"]"#,
            hook("user-phone-number"),
            number(12)
        ))
        .await;
    let counted: u64 = browser
        .attr("live-counter", "data-count")
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(counted > seen, "the counter went from {seen} to {counted}");
    assert!(
        browser
            .text("live-counter")
            .await
            .contains(&format!("{counted} change")),
    );

    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    browser_tests_skipped,
    ignore = "chromium and chromedriver are not installed"
)]
async fn a_viewer_sees_no_writes_and_is_refused_with_the_reason() {
    let app = spawn_app(Backend::Sqlite).await;
    let account = app.create_account("Acme").await;
    let account_id = account.account_id.clone();
    let user = app.create_user(&account_id, "grace@example.com").await;
    app.order_business_numbers(&[number(20)]).await;
    app.assign(&account_id, &user.user_id, &number(20))
        .await
        .unwrap();
    let viewer = app.create_key(Role::Viewer, Scope::Organisation).await;
    let browser = Browser::start().await;

    sign_in(&browser, &app, &viewer, "viewer").await;
    browser
        .goto(&format!(
            "http://{}/#/accounts/{account_id}/users/{}",
            app.address, user.user_id
        ))
        .await;
    browser
        .until(&format!(
            r#"{}[data-e164="{}"]"#,
            hook("user-phone-number"),
            number(20)
        ))
        .await;
    browser.settled().await;
    // No write is offered.
    for write in ["unassign-number", "assign-number", "edit-user-submit"] {
        assert_eq!(browser.count(&hook(write)).await, 0, "{write} is shown");
    }
    let sms = browser.find("setting-sms").await;
    assert!(!sms.is_enabled().await.unwrap(), "the viewer cannot tick");

    // The console adds no access path: forced, the write is the server's to refuse, and the
    // refusal is shown by its name and message.
    browser
        .client
        .execute(
            "const box = document.querySelector(arguments[0]); box.disabled = false; box.click();",
            vec![serde_json::json!(hook("setting-sms"))],
        )
        .await
        .expect("the script runs");
    browser.until_text("error-code", "PERMISSION_DENIED").await;
    assert!(
        browser.text("error-message").await.contains("viewer"),
        "the message says why"
    );
    browser.settled().await;
    browser.screenshot("viewer-refused").await;
    assert_eq!(
        settings_of(&app, &account_id, &user.user_id).await,
        (false, false, false),
        "nothing changed"
    );

    // Signing out forgets the key.
    browser.click("sign-out").await;
    browser.find("signin-form").await;
    let kept = browser
        .client
        .execute("return sessionStorage.length;", vec![])
        .await
        .unwrap();
    assert_eq!(kept, serde_json::json!(0));
    browser.close().await;
}
