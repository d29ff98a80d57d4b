//! `TelephonyService` end to end: assigning and unassigning a user's number, the rules that refuse
//! an assignment, calling/SMS permissions with field masks, and idempotent retries by request_id.

use crate::common::fixtures::{assign_via, mask, unassign_via, update_settings_via};
use crate::common::{Backend, TestApp, spawn_app, spawn_app_with};
use telephony_admin::proto::{
    ChangeEvent, ChangeKind, CreatePhoneNumberOrderRequest, DeletePhoneNumberRequest,
    GetTelephonySettingsRequest, PhoneNumber, PhoneNumberOrderStatus, PhoneNumberProductType,
    PhoneNumberStatus, TelephonySettings, UpdateTelephonySettingsRequest, User,
};
use tonic::{Code, Status};
use tonic_types::StatusExt;

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

// ---------------------------------------------------------------------------------------------
// Set-up and read-back helpers, all through the public API.
// ---------------------------------------------------------------------------------------------

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

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
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

// ---------------------------------------------------------------------------------------------
// Assignment
// ---------------------------------------------------------------------------------------------

async fn assign_normalises_the_number_and_records_the_association(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;

    let assigned = app
        .assign(&account_id, &user.user_id, "+1 (206) 555-0100")
        .await
        .expect("assign");
    assert_eq!(assigned.user_id, user.user_id);
    assert_eq!(assigned.account_id, account_id);
    assert_eq!(assigned.primary_phone_number, "+12065550100");
    assert_eq!(assigned.telephony_settings, Some(OFF));
    assert_eq!(app.get_user(&account_id, &user.user_id).await, assigned);

    let number = app.get_number("+12065550100").await;
    assert_eq!(number.status, PhoneNumberStatus::Assigned as i32);
    let association = number
        .association
        .expect("an assigned number has an association");
    assert_eq!(association.account_id, account_id);
    assert_eq!(association.user_id, user.user_id);
    assert!(association.associate_time.is_some());

    let events = app.all_changes(&account_id, "").await;
    let assigned_events = of_kind(&events, ChangeKind::PhoneNumberAssigned);
    assert_eq!(assigned_events.len(), 1, "{events:?}");
    assert_eq!(assigned_events[0].user_id, user.user_id);
    assert_eq!(assigned_events[0].e164_phone_number, "+12065550100");
    assert_eq!(assigned_events[0].telephony_settings, Some(OFF));
}

async fn assign_refuses_a_number_not_in_the_inventory(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let before = snapshot(&app, &account_id, &[&user.user_id], &["+12065550100"]).await;

    let status = app
        .assign(&account_id, &user.user_id, "+12065550150")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(
        status
            .message()
            .contains("phone number +12065550150 not found"),
        "{status:?}"
    );
    let resource = status
        .get_details_resource_info()
        .expect("a google.rpc.ResourceInfo detail");
    assert_eq!(resource.resource_type, "phone number");
    assert_eq!(resource.resource_name, "+12065550150");

    assert_eq!(
        snapshot(&app, &account_id, &[&user.user_id], &["+12065550100"]).await,
        before
    );
}

async fn assign_refuses_a_number_held_by_another_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, holder) = world(&app, &["+12065550100"]).await;
    let other = app.create_user(&account_id, "bob@example.com").await;
    app.assign(&account_id, &holder.user_id, "+12065550100")
        .await
        .expect("first assignment");
    let before = snapshot(
        &app,
        &account_id,
        &[&holder.user_id, &other.user_id],
        &["+12065550100"],
    )
    .await;

    let status = app
        .assign(&account_id, &other.user_id, "+12065550100")
        .await
        .unwrap_err();
    assert_precondition(
        &status,
        "PHONE_NUMBER_ASSIGNED",
        "is already assigned to another user",
    );
    let failure = status.get_details_precondition_failure().unwrap();
    assert_eq!(failure.violations[0].subject, "+12065550100");

    assert_eq!(
        snapshot(
            &app,
            &account_id,
            &[&holder.user_id, &other.user_id],
            &["+12065550100"]
        )
        .await,
        before
    );
}

async fn assign_refuses_a_user_who_already_has_a_number(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100", "+12065550101"]).await;
    app.assign(&account_id, &user.user_id, "+12065550100")
        .await
        .expect("first assignment");
    let numbers = ["+12065550100", "+12065550101"];
    let before = snapshot(&app, &account_id, &[&user.user_id], &numbers).await;

    let status = app
        .assign(&account_id, &user.user_id, "+12065550101")
        .await
        .unwrap_err();
    assert_precondition(
        &status,
        "USER_HAS_PHONE_NUMBER",
        "already has phone number +12065550100",
    );
    assert!(status.message().contains("unassign it first"), "{status:?}");
    assert_eq!(
        status
            .get_details_precondition_failure()
            .unwrap()
            .violations[0]
            .subject,
        user.user_id
    );

    // Assigning the number the user already holds is refused by the same rule.
    let status = app
        .assign(&account_id, &user.user_id, "+12065550100")
        .await
        .unwrap_err();
    assert_precondition(&status, "USER_HAS_PHONE_NUMBER", "already has phone number");

    assert_eq!(
        snapshot(&app, &account_id, &[&user.user_id], &numbers).await,
        before
    );
}

async fn assign_refuses_a_voice_connector_number(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let order = app
        .numbers()
        .create_phone_number_order(CreatePhoneNumberOrderRequest {
            product_type: PhoneNumberProductType::VoiceConnector as i32,
            e164_phone_numbers: vec!["+12065550120".into()],
        })
        .await
        .expect("create order")
        .into_inner();
    assert_eq!(
        order.status,
        PhoneNumberOrderStatus::Successful as i32,
        "{order:?}"
    );
    let before = snapshot(&app, &account_id, &[&user.user_id], &["+12065550120"]).await;

    let status = app
        .assign(&account_id, &user.user_id, "+12065550120")
        .await
        .unwrap_err();
    assert_precondition(
        &status,
        "PHONE_NUMBER_NOT_BUSINESS_CALLING",
        "only BUSINESS_CALLING numbers can be assigned",
    );
    assert!(status.message().contains("VOICE_CONNECTOR"), "{status:?}");

    let after = snapshot(&app, &account_id, &[&user.user_id], &["+12065550120"]).await;
    assert_eq!(after, before);
    assert_eq!(
        after.numbers[0].status,
        PhoneNumberStatus::Unassigned as i32
    );
}

async fn assign_refuses_a_number_in_the_deletion_queue(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    app.numbers()
        .delete_phone_number(DeletePhoneNumberRequest {
            phone_number_id: "+12065550100".into(),
        })
        .await
        .expect("queue the number for deletion");
    let before = snapshot(&app, &account_id, &[&user.user_id], &["+12065550100"]).await;
    assert_eq!(
        before.numbers[0].status,
        PhoneNumberStatus::DeleteInProgress as i32
    );

    let status = app
        .assign(&account_id, &user.user_id, "+12065550100")
        .await
        .unwrap_err();
    assert_precondition(
        &status,
        "PHONE_NUMBER_DELETE_IN_PROGRESS",
        "is in the deletion queue",
    );

    assert_eq!(
        snapshot(&app, &account_id, &[&user.user_id], &["+12065550100"]).await,
        before
    );
}

async fn assign_refuses_an_unknown_user_or_a_user_of_another_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let other_account = app.create_account("Globex").await.account_id;
    let before = snapshot(&app, &account_id, &[&user.user_id], &["+12065550100"]).await;

    let unknown = uuid::Uuid::new_v4().to_string();
    let status = app
        .assign(&account_id, &unknown, "+12065550100")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("user {unknown} in account {account_id} not found")),
        "{status:?}"
    );

    // The user exists, but not in the account named by the request.
    let status = app
        .assign(&other_account, &user.user_id, "+12065550100")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(
        status.message().contains(&format!(
            "user {} in account {other_account} not found",
            user.user_id
        )),
        "{status:?}"
    );

    assert_eq!(
        snapshot(&app, &account_id, &[&user.user_id], &["+12065550100"]).await,
        before
    );
    assert!(app.all_changes(&other_account, "").await.is_empty());
}

async fn assign_refuses_a_malformed_number(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let before = snapshot(&app, &account_id, &[&user.user_id], &["+12065550100"]).await;

    for malformed in ["2065550100", "+1 206 555 01", "not a number", ""] {
        let status = app
            .assign(&account_id, &user.user_id, malformed)
            .await
            .unwrap_err();
        assert_invalid_field(&status, "e164_phone_number");
    }

    assert_eq!(
        snapshot(&app, &account_id, &[&user.user_id], &["+12065550100"]).await,
        before
    );
}

// ---------------------------------------------------------------------------------------------
// Calling and SMS permissions
// ---------------------------------------------------------------------------------------------

async fn settings_follow_the_update_mask(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    assert_eq!(get_settings(&app, &account_id, uid).await, OFF);

    // Only the masked field is taken from the request, even though all three are true in it.
    let sms_only = TelephonySettings { sms: true, ..OFF };
    let updated = app
        .update_settings(&account_id, uid, ALL_ON, &["sms"])
        .await
        .unwrap();
    assert_eq!(updated, sms_only);
    assert_eq!(get_settings(&app, &account_id, uid).await, sms_only);

    let calling = TelephonySettings {
        inbound_calling: true,
        outbound_calling: true,
        sms: false,
    };
    let updated = app
        .update_settings(
            &account_id,
            uid,
            calling,
            &["inbound_calling", "outbound_calling"],
        )
        .await
        .unwrap();
    assert_eq!(updated, ALL_ON, "sms was not in the mask and stays on");
    assert_eq!(get_settings(&app, &account_id, uid).await, ALL_ON);

    // An empty mask replaces all three.
    let replacement = TelephonySettings {
        inbound_calling: false,
        outbound_calling: true,
        sms: false,
    };
    let updated = app
        .update_settings(&account_id, uid, replacement, &[])
        .await
        .unwrap();
    assert_eq!(updated, replacement);
    assert_eq!(get_settings(&app, &account_id, uid).await, replacement);
    assert_eq!(
        app.get_user(&account_id, uid).await.telephony_settings,
        Some(replacement)
    );

    let events = app.all_changes(&account_id, "").await;
    let settings_events: Vec<_> = of_kind(&events, ChangeKind::TelephonySettingsUpdated)
        .into_iter()
        .map(|e| (e.e164_phone_number.as_str(), e.telephony_settings))
        .collect();
    assert_eq!(
        settings_events,
        vec![
            ("+12065550100", Some(sms_only)),
            ("+12065550100", Some(ALL_ON)),
            ("+12065550100", Some(replacement)),
        ]
    );
}

async fn settings_update_refuses_an_unknown_path(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    app.update_settings(&account_id, uid, ALL_ON, &["sms"])
        .await
        .unwrap();
    let before = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;

    // A valid path next to the unknown one must not be applied either.
    let status = app
        .update_settings(&account_id, uid, ALL_ON, &["inbound_calling", "voicemail"])
        .await
        .unwrap_err();
    assert_invalid_field(&status, "update_mask");
    assert!(status.message().contains("voicemail"), "{status:?}");

    assert_eq!(
        snapshot(&app, &account_id, &[uid], &["+12065550100"]).await,
        before
    );
}

async fn settings_update_requires_the_settings(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    let before = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;

    let status = app
        .telephony()
        .update_telephony_settings(UpdateTelephonySettingsRequest {
            account_id: account_id.clone(),
            user_id: uid.into(),
            telephony_settings: None,
            update_mask: Some(mask(&[])),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_invalid_field(&status, "telephony_settings");
    assert!(status.message().contains("is required"), "{status:?}");

    assert_eq!(
        snapshot(&app, &account_id, &[uid], &["+12065550100"]).await,
        before
    );
}

async fn settings_update_requires_a_number(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    let before = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;

    let status = app
        .update_settings(&account_id, uid, ALL_ON, &[])
        .await
        .unwrap_err();
    assert_precondition(&status, "USER_HAS_NO_PHONE_NUMBER", "has no phone number");
    assert!(status.message().contains("assign one"), "{status:?}");

    assert_eq!(
        snapshot(&app, &account_id, &[uid], &["+12065550100"]).await,
        before
    );
    assert_eq!(get_settings(&app, &account_id, uid).await, OFF);
}

async fn settings_update_without_a_change_emits_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    let sms_only = TelephonySettings { sms: true, ..OFF };
    app.update_settings(&account_id, uid, sms_only, &[])
        .await
        .unwrap();
    let before = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;

    // The same values through a partial mask, the full mask, and a mask of untouched fields.
    let same = app
        .update_settings(&account_id, uid, ALL_ON, &["sms"])
        .await
        .unwrap();
    assert_eq!(same, sms_only);
    let same = app
        .update_settings(&account_id, uid, sms_only, &[])
        .await
        .unwrap();
    assert_eq!(same, sms_only);
    let same = app
        .update_settings(&account_id, uid, OFF, &["inbound_calling"])
        .await
        .unwrap();
    assert_eq!(same, sms_only);

    let after = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;
    assert_eq!(
        after.events.len(),
        before.events.len(),
        "{:?}",
        after.events
    );
    assert_eq!(
        after, before,
        "a no-op update writes nothing, not even update_time"
    );
}

// ---------------------------------------------------------------------------------------------
// Unassignment
// ---------------------------------------------------------------------------------------------

async fn unassign_requires_confirmation(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    app.update_settings(&account_id, uid, ALL_ON, &[])
        .await
        .unwrap();
    let before = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;

    let status = app.unassign(&account_id, uid, false).await.unwrap_err();
    assert_invalid_field(&status, "confirm");
    assert!(status.message().contains("must be true"), "{status:?}");

    let after = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;
    assert_eq!(after, before);
    assert_eq!(after.users[0].primary_phone_number, "+12065550100");
    assert_eq!(after.users[0].telephony_settings, Some(ALL_ON));
    assert_eq!(after.numbers[0].status, PhoneNumberStatus::Assigned as i32);
}

async fn unassign_returns_the_number_and_turns_permissions_off(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    app.update_settings(&account_id, uid, ALL_ON, &[])
        .await
        .unwrap();

    let unassigned = app.unassign(&account_id, uid, true).await.unwrap();
    assert_eq!(unassigned.user_id, user.user_id);
    assert_eq!(unassigned.primary_phone_number, "");
    assert_eq!(unassigned.telephony_settings, Some(OFF));
    assert_eq!(app.get_user(&account_id, uid).await, unassigned);
    assert_eq!(get_settings(&app, &account_id, uid).await, OFF);

    let number = app.get_number("+12065550100").await;
    assert_eq!(number.status, PhoneNumberStatus::Unassigned as i32);
    assert_eq!(number.association, None);

    let events = app.all_changes(&account_id, "").await;
    let unassigned_events = of_kind(&events, ChangeKind::PhoneNumberUnassigned);
    assert_eq!(unassigned_events.len(), 1, "{events:?}");
    assert_eq!(unassigned_events[0].e164_phone_number, "+12065550100");
    assert_eq!(unassigned_events[0].telephony_settings, Some(OFF));

    // Nothing left to unassign.
    let before = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;
    let status = app.unassign(&account_id, uid, true).await.unwrap_err();
    assert_precondition(
        &status,
        "USER_HAS_NO_PHONE_NUMBER",
        "has no phone number to unassign",
    );
    assert_eq!(
        snapshot(&app, &account_id, &[uid], &["+12065550100"]).await,
        before
    );

    // The freed number is back in the inventory: another user can take it.
    let other = app.create_user(&account_id, "bob@example.com").await;
    let reassigned = app
        .assign(&account_id, &other.user_id, "+12065550100")
        .await
        .unwrap();
    assert_eq!(reassigned.primary_phone_number, "+12065550100");
}

// ---------------------------------------------------------------------------------------------
// Idempotent retries
// ---------------------------------------------------------------------------------------------

async fn assign_retry_returns_the_first_result(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let request_id = new_request_id();

    let first = assign_via(
        &mut app.telephony(),
        &account_id,
        &user.user_id,
        "+12065550100",
        &request_id,
    )
    .await
    .unwrap();
    // The retry may format the number differently: it is the same request.
    let retry = assign_via(
        &mut app.telephony(),
        &account_id,
        &user.user_id,
        "+1 (206) 555-0100",
        &request_id,
    )
    .await
    .expect("a retry is answered with the first result, not FAILED_PRECONDITION");
    assert_eq!(retry, first);
    assert_eq!(first.primary_phone_number, "+12065550100");

    let events = app.all_changes(&account_id, "").await;
    assert_eq!(
        of_kind(&events, ChangeKind::PhoneNumberAssigned).len(),
        1,
        "{events:?}"
    );
    assert_eq!(events.len(), 1);

    // Without a request_id the same request is a new one, and the rules refuse it.
    let status = app
        .assign(&account_id, &user.user_id, "+12065550100")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
}

async fn reused_request_id_for_another_request_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100", "+12065550101"]).await;
    let uid = user.user_id.as_str();
    let request_id = new_request_id();
    assign_via(
        &mut app.telephony(),
        &account_id,
        uid,
        "+12065550100",
        &request_id,
    )
    .await
    .unwrap();
    let numbers = ["+12065550100", "+12065550101"];
    let before = snapshot(&app, &account_id, &[uid], &numbers).await;

    // Same operation, other number.
    let status = assign_via(
        &mut app.telephony(),
        &account_id,
        uid,
        "+12065550101",
        &request_id,
    )
    .await
    .unwrap_err();
    assert_invalid_field(&status, "request_id");
    assert!(status.message().contains("different request"), "{status:?}");

    // Other operations.
    let status = unassign_via(&mut app.telephony(), &account_id, uid, true, &request_id)
        .await
        .unwrap_err();
    assert_invalid_field(&status, "request_id");
    let status = update_settings_via(
        &mut app.telephony(),
        &account_id,
        uid,
        ALL_ON,
        &[],
        &request_id,
    )
    .await
    .unwrap_err();
    assert_invalid_field(&status, "request_id");

    assert_eq!(snapshot(&app, &account_id, &[uid], &numbers).await, before);

    // The same holds for ids first used by the other operations.
    let settings_id = new_request_id();
    update_settings_via(
        &mut app.telephony(),
        &account_id,
        uid,
        ALL_ON,
        &["sms"],
        &settings_id,
    )
    .await
    .unwrap();
    let status = update_settings_via(
        &mut app.telephony(),
        &account_id,
        uid,
        ALL_ON,
        &[],
        &settings_id,
    )
    .await
    .unwrap_err();
    assert_invalid_field(&status, "request_id");

    let unassign_id = new_request_id();
    unassign_via(&mut app.telephony(), &account_id, uid, true, &unassign_id)
        .await
        .unwrap();
    let other = app.create_user(&account_id, "bob@example.com").await;
    app.assign(&account_id, &other.user_id, "+12065550101")
        .await
        .unwrap();
    let status = unassign_via(
        &mut app.telephony(),
        &account_id,
        &other.user_id,
        true,
        &unassign_id,
    )
    .await
    .unwrap_err();
    assert_invalid_field(&status, "request_id");
    assert_eq!(
        app.get_user(&account_id, &other.user_id)
            .await
            .primary_phone_number,
        "+12065550101"
    );
}

async fn request_id_must_be_a_uuid(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100", "+12065550101"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    let numbers = ["+12065550100", "+12065550101"];
    let before = snapshot(&app, &account_id, &[uid], &numbers).await;

    for bad in ["retry-1", "12345", "not-a-uuid-at-all-not-a-uuid-at-all"] {
        let status = assign_via(&mut app.telephony(), &account_id, uid, "+12065550101", bad)
            .await
            .unwrap_err();
        assert_invalid_field(&status, "request_id");
        assert!(status.message().contains("must be a UUID"), "{status:?}");
        let status = unassign_via(&mut app.telephony(), &account_id, uid, true, bad)
            .await
            .unwrap_err();
        assert_invalid_field(&status, "request_id");
        let status = update_settings_via(&mut app.telephony(), &account_id, uid, ALL_ON, &[], bad)
            .await
            .unwrap_err();
        assert_invalid_field(&status, "request_id");
    }

    assert_eq!(snapshot(&app, &account_id, &[uid], &numbers).await, before);
}

async fn unassign_retry_returns_the_first_result(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    let request_id = new_request_id();

    let first = unassign_via(&mut app.telephony(), &account_id, uid, true, &request_id)
        .await
        .unwrap();
    assert_eq!(first.primary_phone_number, "");
    let retry = unassign_via(&mut app.telephony(), &account_id, uid, true, &request_id)
        .await
        .expect("a retry is answered with the first result, not FAILED_PRECONDITION");
    assert_eq!(retry, first);

    let events = app.all_changes(&account_id, "").await;
    assert_eq!(
        of_kind(&events, ChangeKind::PhoneNumberUnassigned).len(),
        1,
        "{events:?}"
    );
    assert_eq!(
        app.get_number("+12065550100").await.status,
        PhoneNumberStatus::Unassigned as i32
    );
}

async fn settings_retry_returns_the_first_result(backend: Backend) {
    let app = spawn_app(backend).await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    app.assign(&account_id, uid, "+12065550100").await.unwrap();
    let request_id = new_request_id();
    let sms_only = TelephonySettings { sms: true, ..OFF };

    let first = update_settings_via(
        &mut app.telephony(),
        &account_id,
        uid,
        ALL_ON,
        &["sms"],
        &request_id,
    )
    .await
    .unwrap();
    assert_eq!(first, sms_only);

    // Another request changes the settings in between.
    app.update_settings(&account_id, uid, ALL_ON, &[])
        .await
        .unwrap();
    let before_retry = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;

    let retry = update_settings_via(
        &mut app.telephony(),
        &account_id,
        uid,
        ALL_ON,
        &["sms"],
        &request_id,
    )
    .await
    .unwrap();
    assert_eq!(retry, first, "the retry answers with the first result");

    // The retry neither re-applied anything nor emitted an event.
    let after_retry = snapshot(&app, &account_id, &[uid], &["+12065550100"]).await;
    assert_eq!(after_retry, before_retry);
    assert_eq!(get_settings(&app, &account_id, uid).await, ALL_ON);
    assert_eq!(
        of_kind(&after_retry.events, ChangeKind::TelephonySettingsUpdated).len(),
        2
    );
}

/// A request_id is remembered for the idempotency window only: the housekeeping task forgets
/// it, and a retry after that is a new request.
async fn request_id_is_forgotten_after_its_window(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.idempotency_window = std::time::Duration::from_secs(3);
        s.maintenance_interval = std::time::Duration::from_millis(200);
    })
    .await;
    let (account_id, user) = world(&app, &["+12065550100"]).await;
    let uid = user.user_id.as_str();
    let request_id = new_request_id();
    let first = assign_via(
        &mut app.telephony(),
        &account_id,
        uid,
        "+12065550100",
        &request_id,
    )
    .await
    .unwrap();
    app.unassign(&account_id, uid, true).await.unwrap();

    // Within the window the retry is answered from the record and changes nothing.
    let retry = assign_via(
        &mut app.telephony(),
        &account_id,
        uid,
        "+12065550100",
        &request_id,
    )
    .await
    .unwrap();
    assert_eq!(retry, first);
    assert_eq!(app.all_changes(&account_id, "").await.len(), 2);
    assert_eq!(
        app.get_user(&account_id, uid).await.primary_phone_number,
        ""
    );

    // Once the record is purged, the same request_id assigns the number anew.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        assign_via(
            &mut app.telephony(),
            &account_id,
            uid,
            "+12065550100",
            &request_id,
        )
        .await
        .unwrap();
        if app.all_changes(&account_id, "").await.len() == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request_id was still remembered 20 s after a 3 s window"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let events = app.all_changes(&account_id, "").await;
    assert_eq!(events[2].kind, ChangeKind::PhoneNumberAssigned as i32);
    assert_eq!(
        app.get_user(&account_id, uid).await.primary_phone_number,
        "+12065550100"
    );
}

on_both_databases!(
    assign_normalises_the_number_and_records_the_association,
    assign_refuses_a_number_not_in_the_inventory,
    assign_refuses_a_number_held_by_another_user,
    assign_refuses_a_user_who_already_has_a_number,
    assign_refuses_a_voice_connector_number,
    assign_refuses_a_number_in_the_deletion_queue,
    assign_refuses_an_unknown_user_or_a_user_of_another_account,
    assign_refuses_a_malformed_number,
    settings_follow_the_update_mask,
    settings_update_refuses_an_unknown_path,
    settings_update_requires_the_settings,
    settings_update_requires_a_number,
    settings_update_without_a_change_emits_nothing,
    unassign_requires_confirmation,
    unassign_returns_the_number_and_turns_permissions_off,
    assign_retry_returns_the_first_result,
    reused_request_id_for_another_request_is_refused,
    request_id_must_be_a_uuid,
    unassign_retry_returns_the_first_result,
    settings_retry_returns_the_first_result,
    request_id_is_forgotten_after_its_window,
);
