//! AssignPhoneNumber and UnassignPhoneNumber: the association they record or remove, and every
//! rule that refuses an assignment, leaving nothing changed.

use super::{
    ALL_ON, OFF, assert_invalid_field, assert_precondition, get_settings, of_kind, snapshot, world,
};
use crate::common::{Backend, spawn_app};
use telephony_admin::proto::{
    ChangeKind, CreatePhoneNumberOrderRequest, DeletePhoneNumberRequest, PhoneNumberOrderStatus,
    PhoneNumberProductType, PhoneNumberStatus,
};
use tonic::Code;
use tonic_types::StatusExt;

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

on_both_databases!(
    assign_normalises_the_number_and_records_the_association,
    assign_refuses_a_number_not_in_the_inventory,
    assign_refuses_a_number_held_by_another_user,
    assign_refuses_a_user_who_already_has_a_number,
    assign_refuses_a_voice_connector_number,
    assign_refuses_a_number_in_the_deletion_queue,
    assign_refuses_an_unknown_user_or_a_user_of_another_account,
    assign_refuses_a_malformed_number,
    unassign_requires_confirmation,
    unassign_returns_the_number_and_turns_permissions_off,
);
