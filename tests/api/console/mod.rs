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

/// The live counter once it has stopped moving (events of earlier actions may still arrive).
async fn stable_count(browser: &Browser) -> u64 {
    let count = || async {
        browser
            .attr("live-counter", "data-count")
            .await
            .expect("a count")
            .parse::<u64>()
            .expect("a number")
    };
    let mut last = count().await;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = count().await;
        if now == last {
            return now;
        }
        last = now;
    }
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

    // Inbound calling turned on elsewhere reaches the page; then SMS turned on in the page is
    // saved alone, through the field mask: inbound calling stays on.
    app.update_settings(
        &account_id,
        &user_id,
        telephony_admin::proto::TelephonySettings {
            inbound_calling: true,
            ..Default::default()
        },
        &["inbound_calling"],
    )
    .await
    .expect("updated over gRPC");
    browser
        .until(&format!("{}:checked", hook("setting-inbound_calling")))
        .await;
    browser.settled().await;
    browser.click("setting-sms").await;
    browser.settled().await;
    assert!(ticked(&browser, "sms").await);
    assert_eq!(
        settings_of(&app, &account_id, &user_id).await,
        (true, false, true)
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
    let seen = stable_count(&browser).await;
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
    let counted = stable_count(&browser).await;
    assert_eq!(counted, seen + 1, "one assignment, one change");
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

/// Where the law asks for an emergency location: the refusal is shown by its reason, a location
/// is created from the picker, and the number then goes through with it. A malformed email is
/// shown with its field.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    browser_tests_skipped,
    ignore = "chromium and chromedriver are not installed"
)]
async fn errors_show_their_reason_and_a_location_is_made_in_the_picker() {
    let app = crate::common::spawn_app_with(Backend::Sqlite, |s| {
        s.emergency_location_countries = "US,CA".into();
    })
    .await;
    let account = app.create_account("Acme").await;
    let account_id = account.account_id.clone();
    let user = app.create_user(&account_id, "lin@example.com").await;
    app.order_business_numbers(&[number(30)]).await;
    let browser = Browser::start().await;
    sign_in(&browser, &app, &app.admin_key, "admin").await;

    // A malformed email: the code by name and the field it concerns.
    browser
        .goto(&format!(
            "http://{}/#/accounts/{account_id}/users",
            app.address
        ))
        .await;
    browser.type_into("create-user-email", "not an email").await;
    browser
        .type_into("create-user-display-name", "Nobody")
        .await;
    browser.click("create-user-submit").await;
    browser.until_text("error-code", "INVALID_ARGUMENT").await;
    let violation = browser.text("error-violation").await;
    assert!(violation.starts_with("email"), "{violation}");

    // A US number without a location: refused, with the reason.
    browser
        .goto(&format!(
            "http://{}/#/accounts/{account_id}/users/{}",
            app.address, user.user_id
        ))
        .await;
    browser.click("assign-number").await;
    browser.type_into("picker-search", &number(30)).await;
    browser.click("picker-apply").await;
    browser.settled().await;
    let choose = format!(
        r#"{}[data-e164="{}"] {}"#,
        hook("picker-row"),
        number(30),
        hook("picker-choose")
    );
    browser.until(&choose).await.click().await.unwrap();
    browser
        .until_text("error-code", "FAILED_PRECONDITION")
        .await;
    assert_eq!(
        browser.text("error-reason").await,
        "EMERGENCY_LOCATION_REQUIRED"
    );

    // A new location from the picker, then the same choice goes through with it.
    browser.click("new-location-open").await;
    for (field, value) in [
        ("new-location-company", "Acme"),
        ("new-location-house-number", "1600"),
        ("new-location-street-name", "Pennsylvania"),
        ("new-location-street-suffix", "Ave"),
        ("new-location-city", "Washington"),
        ("new-location-state", "DC"),
        ("new-location-postal-code", "20500"),
        ("new-location-place", "Floor 2"),
    ] {
        browser.type_into(field, value).await;
    }
    browser.click("new-location-submit").await;
    let result = browser
        .until(&format!(
            r#"{}[data-validation-state="VALIDATION_STATE_STRUCTURE_VALID"]"#,
            hook("new-location-result")
        ))
        .await;
    let location_id = result
        .attr("data-location-id")
        .await
        .unwrap()
        .expect("the new location's id");
    browser.settled().await;
    browser.screenshot("new-location").await;
    browser.until(&choose).await.click().await.unwrap();
    browser
        .until(&format!(
            r#"{}[data-e164="{}"]"#,
            hook("user-phone-number"),
            number(30)
        ))
        .await;
    let held = app.get_user(&account_id, &user.user_id).await;
    assert_eq!(held.primary_phone_number, number(30));
    assert_eq!(
        held.emergency_location.map(|l| l.location_id),
        Some(location_id),
        "the location came with the number"
    );
    browser.close().await;
}
