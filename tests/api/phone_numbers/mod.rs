//! PhoneNumberService end to end: orders, reading and listing the inventory, updates, and the
//! deletion queue (delete, restore, expiry and purge). This module holds the functions they share.

use crate::common::TestApp;
use telephony_admin::proto::{
    CreatePhoneNumberOrderRequest, DeletePhoneNumberRequest, ListPhoneNumbersRequest, PhoneNumber,
    PhoneNumberOrder, PhoneNumberProductType, PhoneNumberStatus,
};
use tonic::{Code, Status};

mod deletion_queue;
mod inventory;
mod orders;
mod updates;

const BUSINESS: PhoneNumberProductType = PhoneNumberProductType::BusinessCalling;
const VOICE: PhoneNumberProductType = PhoneNumberProductType::VoiceConnector;
const TOLL_FREE: &str = "+18005550199";
const LONDON: &str = "+442079460958";

async fn order(
    app: &TestApp,
    product: PhoneNumberProductType,
    numbers: &[&str],
) -> PhoneNumberOrder {
    app.numbers()
        .create_phone_number_order(CreatePhoneNumberOrderRequest {
            product_type: product as i32,
            e164_phone_numbers: numbers.iter().map(|n| n.to_string()).collect(),
        })
        .await
        .expect("the order is accepted")
        .into_inner()
}

async fn delete(app: &TestApp, id: &str) -> Result<PhoneNumber, Status> {
    app.numbers()
        .delete_phone_number(DeletePhoneNumberRequest {
            phone_number_id: id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn list(app: &TestApp, request: ListPhoneNumbersRequest) -> Result<Vec<PhoneNumber>, Status> {
    app.numbers()
        .list_phone_numbers(request)
        .await
        .map(|r| r.into_inner().phone_numbers)
}

/// The E.164 numbers of a one-page listing (the inventories here stay below the default page).
async fn list_e164(app: &TestApp, request: ListPhoneNumbersRequest) -> Vec<String> {
    list(app, request)
        .await
        .expect("the listing succeeds")
        .into_iter()
        .map(|n| n.e164_phone_number)
        .collect()
}

fn by_status(status: PhoneNumberStatus) -> ListPhoneNumbersRequest {
    ListPhoneNumbersRequest {
        status: status as i32,
        ..Default::default()
    }
}

/// An account with one user; returns (account_id, user_id).
async fn account_with_user(app: &TestApp, email: &str) -> (String, String) {
    let account_id = app.create_account("Acme").await.account_id;
    let user_id = app.create_user(&account_id, email).await.user_id;
    (account_id, user_id)
}

#[track_caller]
fn expect_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got a success: {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "unexpected status: {status:?}");
            status
        }
    }
}

#[track_caller]
fn assert_mentions(status: &Status, fragment: &str) {
    assert!(
        status.message().contains(fragment),
        "{:?} does not mention {fragment:?}",
        status.message()
    );
}
