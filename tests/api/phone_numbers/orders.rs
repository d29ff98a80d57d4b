//! CreatePhoneNumberOrder and GetPhoneNumberOrder: valid, reformatted, bad and malformed numbers,
//! each reported on its own.

use super::{BUSINESS, LONDON, TOLL_FREE, VOICE, assert_mentions, expect_code, list_e164, order};
use crate::common::{Backend, TestApp, spawn_app};
use telephony_admin::proto::{
    CreatePhoneNumberOrderRequest, GetPhoneNumberOrderRequest, ListPhoneNumbersRequest,
    OrderedPhoneNumberStatus, PhoneNumberOrder, PhoneNumberOrderStatus, PhoneNumberProductType,
    PhoneNumberStatus, PhoneNumberType,
};
use tonic::{Code, Status};

async fn try_order(
    app: &TestApp,
    product_type: i32,
    numbers: Vec<String>,
) -> Result<PhoneNumberOrder, Status> {
    app.numbers()
        .create_phone_number_order(CreatePhoneNumberOrderRequest {
            product_type,
            e164_phone_numbers: numbers,
        })
        .await
        .map(|r| r.into_inner())
}

fn item(order: &PhoneNumberOrder, index: usize) -> (&str, OrderedPhoneNumberStatus, &str) {
    let item = &order.ordered_phone_numbers[index];
    (
        item.e164_phone_number.as_str(),
        item.status(),
        item.reason.as_str(),
    )
}

async fn order_of_valid_numbers_succeeds(backend: Backend) {
    let app = spawn_app(backend).await;
    let placed = order(&app, BUSINESS, &["+1 206 555 0100", "+44 20 7946 0958"]).await;
    assert_eq!(placed.status(), PhoneNumberOrderStatus::Successful);
    assert_eq!(placed.product_type(), BUSINESS);
    assert!(uuid::Uuid::try_parse(&placed.order_id).is_ok());
    assert_eq!(placed.ordered_phone_numbers.len(), 2);
    assert_eq!(
        item(&placed, 0),
        ("+12065550100", OrderedPhoneNumberStatus::Acquired, "")
    );
    assert_eq!(
        item(&placed, 1),
        (LONDON, OrderedPhoneNumberStatus::Acquired, "")
    );

    for (e164, country) in [("+12065550100", "US"), (LONDON, "GB")] {
        let number = app.get_number(e164).await;
        assert_eq!(number.status(), PhoneNumberStatus::Unassigned);
        assert_eq!(number.country, country);
        assert_eq!(number.r#type(), PhoneNumberType::Local);
        assert_eq!(number.product_type(), BUSINESS);
        assert_eq!(number.order_id, placed.order_id);
        assert_eq!(number.association, None);
        assert_eq!(number.deletion_time, None);
        assert_eq!(number.calling_name, "");
    }

    let fetched = app
        .numbers()
        .get_phone_number_order(GetPhoneNumberOrderRequest {
            order_id: placed.order_id.clone(),
        })
        .await
        .expect("the order can be read back")
        .into_inner();
    assert_eq!(fetched, placed);
}

async fn formatting_variants_are_one_number(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = order(&app, BUSINESS, &["+1 (206) 555-0100", "+12065550100"]).await;
    assert_eq!(first.status(), PhoneNumberOrderStatus::Partial);
    assert_eq!(
        item(&first, 0),
        ("+12065550100", OrderedPhoneNumberStatus::Acquired, "")
    );
    let (e164, status, reason) = item(&first, 1);
    assert_eq!(
        (e164, status),
        ("+12065550100", OrderedPhoneNumberStatus::Failed)
    );
    assert!(reason.contains("more than once"), "{reason:?}");

    let second = order(&app, BUSINESS, &["+1.206.555.0100"]).await;
    assert_eq!(second.status(), PhoneNumberOrderStatus::Failed);
    let (e164, status, reason) = item(&second, 0);
    assert_eq!(
        (e164, status),
        ("+12065550100", OrderedPhoneNumberStatus::Failed)
    );
    assert!(reason.contains("already in the inventory"), "{reason:?}");

    // The refused second order left the number with the order that acquired it.
    assert_eq!(
        app.get_number("+12065550100").await.order_id,
        first.order_id
    );
    assert_eq!(
        list_e164(&app, ListPhoneNumbersRequest::default()).await,
        ["+12065550100"]
    );
}

async fn bad_numbers_fail_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let bad = ["+1 206 555 010", "hello", "12065550100"];
    let placed = order(&app, BUSINESS, &[bad[0], "+12065550101", bad[1], bad[2]]).await;
    assert_eq!(placed.status(), PhoneNumberOrderStatus::Partial);
    assert_eq!(
        item(&placed, 1),
        ("+12065550101", OrderedPhoneNumberStatus::Acquired, "")
    );
    for (index, raw) in [(0, bad[0]), (2, bad[1]), (3, bad[2])] {
        let (e164, status, reason) = item(&placed, index);
        assert_eq!(e164, raw, "an unparseable number is reported as given");
        assert_eq!(status, OrderedPhoneNumberStatus::Failed);
        assert!(!reason.is_empty(), "{raw:?} failed without a reason");
    }
    assert!(
        item(&placed, 3).2.contains("'+'"),
        "{:?}",
        item(&placed, 3).2
    );
    assert_eq!(
        list_e164(&app, ListPhoneNumbersRequest::default()).await,
        ["+12065550101"]
    );
}

async fn order_of_only_bad_numbers_fails(backend: Backend) {
    let app = spawn_app(backend).await;
    let placed = order(&app, BUSINESS, &["hello", "+1 206 555 010"]).await;
    assert_eq!(placed.status(), PhoneNumberOrderStatus::Failed);
    assert!(
        placed
            .ordered_phone_numbers
            .iter()
            .all(|i| i.status() == OrderedPhoneNumberStatus::Failed && !i.reason.is_empty())
    );
    // A failed order is still recorded and can be looked up.
    let fetched = app
        .numbers()
        .get_phone_number_order(GetPhoneNumberOrderRequest {
            order_id: placed.order_id.clone(),
        })
        .await
        .expect("a failed order is kept")
        .into_inner();
    assert_eq!(fetched, placed);
    assert!(
        list_e164(&app, ListPhoneNumbersRequest::default())
            .await
            .is_empty()
    );
}

async fn toll_free_numbers_are_not_business_calling(backend: Backend) {
    let app = spawn_app(backend).await;
    let refused = order(&app, BUSINESS, &["+1 800 555 0199"]).await;
    assert_eq!(refused.status(), PhoneNumberOrderStatus::Failed);
    let (e164, status, reason) = item(&refused, 0);
    assert_eq!(
        (e164, status),
        (TOLL_FREE, OrderedPhoneNumberStatus::Failed)
    );
    assert!(reason.contains("toll-free"), "{reason:?}");
    expect_code(app.try_get_number(TOLL_FREE).await, Code::NotFound);

    let accepted = order(&app, VOICE, &[TOLL_FREE]).await;
    assert_eq!(accepted.status(), PhoneNumberOrderStatus::Successful);
    let number = app.get_number(TOLL_FREE).await;
    assert_eq!(number.r#type(), PhoneNumberType::TollFree);
    assert_eq!(number.product_type(), VOICE);
    assert_eq!(number.country, "US");
    assert_eq!(number.order_id, accepted.order_id);
    assert_eq!(number.status(), PhoneNumberStatus::Unassigned);
}

async fn malformed_orders_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let one = vec!["+12065550100".to_string()];

    let status = expect_code(
        try_order(
            &app,
            PhoneNumberProductType::Unspecified as i32,
            one.clone(),
        )
        .await,
        Code::InvalidArgument,
    );
    assert_mentions(&status, "product_type");
    let status = expect_code(
        try_order(&app, 42, one.clone()).await,
        Code::InvalidArgument,
    );
    assert_mentions(&status, "product_type");

    let status = expect_code(
        try_order(&app, BUSINESS as i32, Vec::new()).await,
        Code::InvalidArgument,
    );
    assert_mentions(&status, "e164_phone_numbers");

    let too_many: Vec<String> = (0..1001).map(|i| format!("+1206555{:04}", i)).collect();
    let status = expect_code(
        try_order(&app, BUSINESS as i32, too_many).await,
        Code::InvalidArgument,
    );
    assert_mentions(&status, "1000");

    // Nothing was acquired by the refused requests.
    assert!(
        list_e164(&app, ListPhoneNumbersRequest::default())
            .await
            .is_empty()
    );

    // Exactly the limit is accepted: each number is judged on its own.
    let at_limit: Vec<String> = (0..1000).map(|i| format!("not a number {i}")).collect();
    let placed = try_order(&app, BUSINESS as i32, at_limit)
        .await
        .expect("1000 numbers are within the limit");
    assert_eq!(placed.status(), PhoneNumberOrderStatus::Failed);
    assert_eq!(placed.ordered_phone_numbers.len(), 1000);
}

async fn unknown_order_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let status = expect_code(
        app.numbers()
            .get_phone_number_order(GetPhoneNumberOrderRequest {
                order_id: uuid::Uuid::now_v7().to_string(),
            })
            .await,
        Code::NotFound,
    );
    assert_mentions(&status, "order");
    expect_code(
        app.numbers()
            .get_phone_number_order(GetPhoneNumberOrderRequest {
                order_id: "not-an-id".into(),
            })
            .await,
        Code::InvalidArgument,
    );
}

on_both_databases!(
    order_of_valid_numbers_succeeds,
    formatting_variants_are_one_number,
    bad_numbers_fail_alone,
    order_of_only_bad_numbers_fails,
    toll_free_numbers_are_not_business_calling,
    malformed_orders_are_refused,
    unknown_order_is_not_found,
);
