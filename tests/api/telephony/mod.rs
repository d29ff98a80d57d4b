//! `TelephonyService` end to end: assigning and unassigning a user's number, the rules that refuse
//! an assignment, calling/SMS permissions with field masks, and idempotent retries by request_id.
//! This module holds the set-up and read-back functions they share, all through the public API.

use crate::common::TestApp;
use telephony_admin::proto::{
    ChangeEvent, ChangeKind, GetTelephonySettingsRequest, PhoneNumber, TelephonySettings, User,
};
use tonic::{Code, Status};
use tonic_types::StatusExt;

mod assignment;
mod idempotency;
mod settings;

const OFF: TelephonySettings = TelephonySettings {
    inbound_calling: false,
    outbound_calling: false,
    sms: false,
};

const ALL_ON: TelephonySettings = TelephonySettings {
    inbound_calling: true,
    outbound_calling: true,
    sms: true,
};

/// An account with one user and the given BUSINESS_CALLING numbers in the inventory.
async fn world(app: &TestApp, numbers: &[&str]) -> (String, User) {
    let account_id = app.create_account("Acme").await.account_id;
    let user = app.create_user(&account_id, "ada@example.com").await;
    app.order_business_numbers(numbers).await;
    (account_id, user)
}

async fn get_settings(app: &TestApp, account_id: &str, user_id: &str) -> TelephonySettings {
    app.telephony()
        .get_telephony_settings(GetTelephonySettingsRequest {
            account_id: account_id.into(),
            user_id: user_id.into(),
        })
        .await
        .expect("get telephony settings")
        .into_inner()
}

fn of_kind(events: &[ChangeEvent], kind: ChangeKind) -> Vec<&ChangeEvent> {
    events.iter().filter(|e| e.kind == kind as i32).collect()
}

/// What a refused request must leave untouched: the user, the numbers involved, the history.
#[derive(Debug, PartialEq)]
struct Snapshot {
    users: Vec<User>,
    numbers: Vec<PhoneNumber>,
    events: Vec<ChangeEvent>,
}

async fn snapshot(
    app: &TestApp,
    account_id: &str,
    user_ids: &[&str],
    numbers: &[&str],
) -> Snapshot {
    let mut users = Vec::new();
    for user_id in user_ids {
        users.push(app.get_user(account_id, user_id).await);
    }
    let mut phone_numbers = Vec::new();
    for number in numbers {
        phone_numbers.push(app.get_number(number).await);
    }
    Snapshot {
        users,
        numbers: phone_numbers,
        events: app.all_changes(account_id, "").await,
    }
}

/// FAILED_PRECONDITION whose message contains `fragment` and whose
/// `google.rpc.PreconditionFailure` names `reason`.
fn assert_precondition(status: &Status, reason: &str, fragment: &str) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains(fragment),
        "message {:?} should contain {fragment:?}",
        status.message()
    );
    let failure = status
        .get_details_precondition_failure()
        .expect("a google.rpc.PreconditionFailure detail");
    assert_eq!(failure.violations.len(), 1, "{failure:?}");
    assert_eq!(failure.violations[0].r#type, reason, "{failure:?}");
}

/// INVALID_ARGUMENT whose `google.rpc.BadRequest` names `field`.
fn assert_invalid_field(status: &Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains(field), "{status:?}");
    let bad_request = status
        .get_details_bad_request()
        .expect("a google.rpc.BadRequest detail");
    assert!(
        bad_request
            .field_violations
            .iter()
            .any(|v| v.field == field),
        "a field violation on {field}: {bad_request:?}"
    );
}
