//! PhoneNumberService end to end: orders, reading and listing the inventory, updates, and the
//! deletion queue (delete, restore, expiry and purge).

use std::time::Duration;

use crate::common::fixtures::unix_now;
use crate::common::{Backend, TestApp, spawn_app, spawn_app_with};
use prost_types::{FieldMask, Timestamp};
use telephony_admin::proto::{
    CreatePhoneNumberOrderRequest, DeletePhoneNumberRequest, GetPhoneNumberOrderRequest,
    ListPhoneNumbersRequest, OrderedPhoneNumberStatus, PhoneNumber, PhoneNumberCapabilities,
    PhoneNumberOrder, PhoneNumberOrderStatus, PhoneNumberProductType, PhoneNumberStatus,
    PhoneNumberType, RestorePhoneNumberRequest, UpdatePhoneNumberRequest,
};
use tonic::{Code, Status};

const BUSINESS: PhoneNumberProductType = PhoneNumberProductType::BusinessCalling;
const VOICE: PhoneNumberProductType = PhoneNumberProductType::VoiceConnector;
const TOLL_FREE: &str = "+18005550199";
const LONDON: &str = "+442079460958";
const SEVEN_DAYS: i64 = 7 * 24 * 3600;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

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

async fn delete(app: &TestApp, id: &str) -> Result<PhoneNumber, Status> {
    app.numbers()
        .delete_phone_number(DeletePhoneNumberRequest {
            phone_number_id: id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn restore(app: &TestApp, id: &str) -> Result<PhoneNumber, Status> {
    app.numbers()
        .restore_phone_number(RestorePhoneNumberRequest {
            phone_number_id: id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn update(
    app: &TestApp,
    id: &str,
    product_type: PhoneNumberProductType,
    calling_name: &str,
    paths: Option<&[&str]>,
) -> Result<PhoneNumber, Status> {
    app.numbers()
        .update_phone_number(UpdatePhoneNumberRequest {
            phone_number_id: id.into(),
            product_type: product_type as i32,
            calling_name: calling_name.into(),
            update_mask: paths.map(|paths| FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
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

fn seconds(t: &Option<Timestamp>) -> i64 {
    t.as_ref().expect("timestamp set").seconds
}

/// Polls until the number reads as NOT_FOUND; its deletion time passing is not an event the
/// API can announce.
async fn wait_until_gone(app: &TestApp, id: &str) {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match app.try_get_number(id).await {
                Err(status) if status.code() == Code::NotFound => return,
                Ok(number) => {
                    assert_eq!(number.status, PhoneNumberStatus::DeleteInProgress as i32)
                }
                Err(status) => panic!("unexpected status while waiting: {status:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the number is gone once its deletion time has passed");
}

fn item(order: &PhoneNumberOrder, index: usize) -> (&str, OrderedPhoneNumberStatus, &str) {
    let item = &order.ordered_phone_numbers[index];
    (
        item.e164_phone_number.as_str(),
        item.status(),
        item.reason.as_str(),
    )
}

// ---------------------------------------------------------------------------------------------
// CreatePhoneNumberOrder / GetPhoneNumberOrder
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// GetPhoneNumber
// ---------------------------------------------------------------------------------------------

async fn get_accepts_any_formatting(backend: Backend) {
    let app = spawn_app(backend).await;
    order(&app, BUSINESS, &["+12065550100"]).await;
    let canonical = app.get_number("+12065550100").await;
    assert_eq!(canonical.phone_number_id, "+12065550100");
    assert_eq!(canonical.phone_number_id, canonical.e164_phone_number);
    assert_eq!(
        canonical.capabilities,
        Some(PhoneNumberCapabilities {
            inbound_call: true,
            outbound_call: true,
            inbound_sms: true,
            outbound_sms: true,
            inbound_mms: true,
            outbound_mms: true,
        })
    );
    for variant in ["+1 (206) 555-0100", "+1.206.555.0100", " +1 206 555 0100 "] {
        assert_eq!(app.get_number(variant).await, canonical, "{variant:?}");
    }

    order(&app, VOICE, &[TOLL_FREE]).await;
    let toll_free = app.get_number(TOLL_FREE).await;
    assert_eq!(toll_free.phone_number_id, TOLL_FREE);
    assert_eq!(
        toll_free.capabilities,
        Some(PhoneNumberCapabilities {
            inbound_call: true,
            outbound_call: true,
            ..Default::default()
        }),
        "a voice-only number carries no messaging"
    );
}

async fn get_refuses_impossible_and_unknown_numbers(backend: Backend) {
    let app = spawn_app(backend).await;
    order(&app, BUSINESS, &["+12065550100"]).await;
    for impossible in ["+1 206 555 010", "hello", "12065550100", ""] {
        let status = expect_code(app.try_get_number(impossible).await, Code::InvalidArgument);
        assert_mentions(&status, "phone_number_id");
    }
    let status = expect_code(app.try_get_number("+12065550199").await, Code::NotFound);
    assert_mentions(&status, "+12065550199");
}

// ---------------------------------------------------------------------------------------------
// ListPhoneNumbers
// ---------------------------------------------------------------------------------------------

async fn list_filters(backend: Backend) {
    let app = spawn_app(backend).await;
    order(
        &app,
        BUSINESS,
        &[
            "+12065550100",
            "+12065550101",
            "+12065550102",
            "+12065550103",
        ],
    )
    .await;
    order(&app, VOICE, &["+12065550110", TOLL_FREE]).await;
    let (account_id, user_id) = account_with_user(&app, "ada@example.com").await;
    app.assign(&account_id, &user_id, "+12065550102")
        .await
        .expect("assigned");
    delete(&app, "+12065550103").await.expect("deleted");

    assert_eq!(
        list_e164(&app, ListPhoneNumbersRequest::default()).await,
        [
            "+12065550100",
            "+12065550101",
            "+12065550102",
            "+12065550103",
            "+12065550110",
            TOLL_FREE
        ]
    );
    assert_eq!(
        list_e164(&app, by_status(PhoneNumberStatus::Unassigned)).await,
        ["+12065550100", "+12065550101", "+12065550110", TOLL_FREE]
    );
    let assigned = list(&app, by_status(PhoneNumberStatus::Assigned))
        .await
        .expect("listing");
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0].e164_phone_number, "+12065550102");
    let association = assigned[0].association.as_ref().expect("association set");
    assert_eq!(association.account_id, account_id);
    assert_eq!(association.user_id, user_id);
    assert!(association.associate_time.is_some());
    assert_eq!(
        list_e164(&app, by_status(PhoneNumberStatus::DeleteInProgress)).await,
        ["+12065550103"]
    );
    assert_eq!(
        list_e164(
            &app,
            ListPhoneNumbersRequest {
                product_type: VOICE as i32,
                ..Default::default()
            }
        )
        .await,
        ["+12065550110", TOLL_FREE]
    );
    assert_eq!(
        list_e164(
            &app,
            ListPhoneNumbersRequest {
                status: PhoneNumberStatus::Unassigned as i32,
                product_type: BUSINESS as i32,
                ..Default::default()
            }
        )
        .await,
        ["+12065550100", "+12065550101"]
    );
    assert_eq!(
        list_e164(
            &app,
            ListPhoneNumbersRequest {
                account_id: account_id.clone(),
                ..Default::default()
            }
        )
        .await,
        ["+12065550102"]
    );
    assert_eq!(
        list_e164(
            &app,
            ListPhoneNumbersRequest {
                user_id: user_id.clone(),
                ..Default::default()
            }
        )
        .await,
        ["+12065550102"]
    );
    let stranger = uuid::Uuid::now_v7().to_string();
    assert!(
        list_e164(
            &app,
            ListPhoneNumbersRequest {
                account_id: stranger.clone(),
                ..Default::default()
            }
        )
        .await
        .is_empty()
    );
    assert!(
        list_e164(
            &app,
            ListPhoneNumbersRequest {
                account_id,
                status: PhoneNumberStatus::Unassigned as i32,
                ..Default::default()
            }
        )
        .await
        .is_empty()
    );
}

async fn list_refuses_unknown_filters(backend: Backend) {
    let app = spawn_app(backend).await;
    let status = expect_code(
        list(
            &app,
            ListPhoneNumbersRequest {
                status: 42,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_mentions(&status, "status");
    let status = expect_code(
        list(
            &app,
            ListPhoneNumbersRequest {
                product_type: 42,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_mentions(&status, "product_type");
    let status = expect_code(
        list(
            &app,
            ListPhoneNumbersRequest {
                user_id: "someone".into(),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_mentions(&status, "user_id");
}

async fn list_pages_by_e164(backend: Backend) {
    let app = spawn_app(backend).await;
    // Ordered out of E.164 order, over two orders, so that creation order cannot pass for it.
    order(
        &app,
        BUSINESS,
        &[
            LONDON,
            "+12065550107",
            "+12065550101",
            "+12065550105",
            "+12065550103",
        ],
    )
    .await;
    order(
        &app,
        BUSINESS,
        &[
            "+12065550108",
            "+12065550100",
            "+12065550106",
            "+12065550102",
            "+12065550104",
        ],
    )
    .await;
    let mut expected: Vec<String> = (0..=8).map(|i| format!("+1206555010{i}")).collect();
    expected.push(LONDON.into());

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut token = String::new();
    let mut second_token = None;
    loop {
        let page = app
            .numbers()
            .list_phone_numbers(ListPhoneNumbersRequest {
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("a page")
            .into_inner();
        sizes.push(page.phone_numbers.len());
        seen.extend(page.phone_numbers.into_iter().map(|n| n.e164_phone_number));
        if page.next_page_token.is_empty() {
            break;
        }
        assert!(sizes.len() < 10, "pagination does not end");
        token = page.next_page_token;
        second_token.get_or_insert_with(|| token.clone());
    }
    assert_eq!(seen, expected);
    assert_eq!(sizes, [3, 3, 3, 1]);

    let status = expect_code(
        list(
            &app,
            ListPhoneNumbersRequest {
                page_size: 3,
                page_token: "garbage!".into(),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_mentions(&status, "page_token");

    let token = second_token.expect("more than one page");
    let status = expect_code(
        list(
            &app,
            ListPhoneNumbersRequest {
                page_size: 3,
                page_token: token.clone(),
                status: PhoneNumberStatus::Unassigned as i32,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_mentions(&status, "page_token");
    // The same token with its own filters still works, with any page size.
    let rest = list(
        &app,
        ListPhoneNumbersRequest {
            page_size: 100,
            page_token: token,
            ..Default::default()
        },
    )
    .await
    .expect("the token is valid for its filters");
    assert_eq!(
        rest.into_iter()
            .map(|n| n.e164_phone_number)
            .collect::<Vec<_>>(),
        expected[3..]
    );

    expect_code(
        list(
            &app,
            ListPhoneNumbersRequest {
                page_size: -1,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
}

// ---------------------------------------------------------------------------------------------
// UpdatePhoneNumber
// ---------------------------------------------------------------------------------------------

async fn calling_name_rules(backend: Backend) {
    let app = spawn_app(backend).await;
    order(&app, BUSINESS, &["+12065550100"]).await;
    let updated = update(
        &app,
        "+1 206 555 0100",
        PhoneNumberProductType::Unspecified,
        "Front Desk 1",
        Some(&["calling_name"]),
    )
    .await
    .expect("a valid calling name");
    assert_eq!(updated.calling_name, "Front Desk 1");
    assert_eq!(
        updated.product_type(),
        BUSINESS,
        "a field outside the mask stays"
    );
    assert_eq!(app.get_number("+12065550100").await, updated);

    for bad in ["A", "ABCDEFGHIJKLMNOP", "Front-Desk"] {
        let status = expect_code(
            update(
                &app,
                "+12065550100",
                PhoneNumberProductType::Unspecified,
                bad,
                Some(&["calling_name"]),
            )
            .await,
            Code::InvalidArgument,
        );
        assert_mentions(&status, "calling_name");
        assert_eq!(
            app.get_number("+12065550100").await.calling_name,
            "Front Desk 1",
            "{bad:?} changed the name"
        );
    }

    // A calling name outside the mask is ignored.
    let unchanged = update(
        &app,
        "+12065550100",
        BUSINESS,
        "Other",
        Some(&["product_type"]),
    )
    .await
    .expect("product type unchanged");
    assert_eq!(unchanged.calling_name, "Front Desk 1");

    let cleared = update(
        &app,
        "+12065550100",
        PhoneNumberProductType::Unspecified,
        "",
        Some(&["calling_name"]),
    )
    .await
    .expect("an empty name clears it");
    assert_eq!(cleared.calling_name, "");
}

async fn product_type_rules(backend: Backend) {
    let app = spawn_app(backend).await;
    order(&app, BUSINESS, &["+12065550100", "+12065550101"]).await;
    order(&app, VOICE, &[TOLL_FREE]).await;

    let changed = update(&app, "+12065550100", VOICE, "", Some(&["product_type"]))
        .await
        .expect("an unassigned local number changes product");
    assert_eq!(changed.product_type(), VOICE);
    assert_eq!(app.get_number("+12065550100").await.product_type(), VOICE);

    let status = expect_code(
        update(&app, TOLL_FREE, BUSINESS, "", Some(&["product_type"])).await,
        Code::InvalidArgument,
    );
    assert_mentions(&status, "toll-free");
    assert_eq!(app.get_number(TOLL_FREE).await.product_type(), VOICE);

    let status = expect_code(
        update(
            &app,
            "+12065550100",
            PhoneNumberProductType::Unspecified,
            "",
            Some(&["product_type"]),
        )
        .await,
        Code::InvalidArgument,
    );
    assert_mentions(&status, "product_type");
    assert_eq!(app.get_number("+12065550100").await.product_type(), VOICE);

    let (account_id, user_id) = account_with_user(&app, "ada@example.com").await;
    app.assign(&account_id, &user_id, "+12065550101")
        .await
        .expect("assigned");
    let before = app.get_number("+12065550101").await;
    let status = expect_code(
        update(&app, "+12065550101", VOICE, "", Some(&["product_type"])).await,
        Code::FailedPrecondition,
    );
    assert_mentions(&status, "assigned");
    assert_eq!(app.get_number("+12065550101").await, before);
    assert_eq!(
        app.get_user(&account_id, &user_id)
            .await
            .primary_phone_number,
        "+12065550101"
    );

    // Keeping the product type of an assigned number is no change and is allowed.
    update(
        &app,
        "+12065550101",
        BUSINESS,
        "Ada",
        Some(&["product_type", "calling_name"]),
    )
    .await
    .expect("same product type with a new name");
}

async fn update_mask_is_required_and_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    order(&app, BUSINESS, &["+12065550100"]).await;
    let before = app.get_number("+12065550100").await;

    let status = expect_code(
        update(&app, "+12065550100", VOICE, "Front Desk", None).await,
        Code::InvalidArgument,
    );
    assert_mentions(&status, "update_mask");
    let status = expect_code(
        update(&app, "+12065550100", VOICE, "Front Desk", Some(&[])).await,
        Code::InvalidArgument,
    );
    assert_mentions(&status, "update_mask");
    let status = expect_code(
        update(
            &app,
            "+12065550100",
            VOICE,
            "Front Desk",
            Some(&["calling_name", "status"]),
        )
        .await,
        Code::InvalidArgument,
    );
    assert_mentions(&status, "update_mask");
    assert_mentions(&status, "status");
    assert_eq!(app.get_number("+12065550100").await, before);

    expect_code(
        update(&app, "+12065550199", VOICE, "", Some(&["product_type"])).await,
        Code::NotFound,
    );
}

// ---------------------------------------------------------------------------------------------
// DeletePhoneNumber / RestorePhoneNumber
// ---------------------------------------------------------------------------------------------

async fn delete_queues_an_unassigned_number(backend: Backend) {
    let app = spawn_app(backend).await;
    order(&app, BUSINESS, &["+12065550100"]).await;
    let deleted = delete(&app, "+1 (206) 555-0100").await.expect("deleted");
    assert_eq!(deleted.status(), PhoneNumberStatus::DeleteInProgress);
    let expected = unix_now() + SEVEN_DAYS;
    let deletion = seconds(&deleted.deletion_time);
    assert!(
        (deletion - expected).abs() <= 60,
        "deletion time {deletion} is not about 7 days from now ({expected})"
    );
    assert_eq!(app.get_number("+12065550100").await, deleted);

    let status = expect_code(delete(&app, "+12065550100").await, Code::FailedPrecondition);
    assert_mentions(&status, "deletion queue");
    assert_eq!(
        app.get_number("+12065550100").await.deletion_time,
        deleted.deletion_time,
        "a second delete does not move the deletion time"
    );

    let (account_id, user_id) = account_with_user(&app, "ada@example.com").await;
    let status = expect_code(
        app.assign(&account_id, &user_id, "+12065550100").await,
        Code::FailedPrecondition,
    );
    assert_mentions(&status, "deletion queue");
    assert_eq!(
        app.get_user(&account_id, &user_id)
            .await
            .primary_phone_number,
        ""
    );
    assert_eq!(app.get_number("+12065550100").await, deleted);

    expect_code(delete(&app, "+12065550199").await, Code::NotFound);
    expect_code(delete(&app, "hello").await, Code::InvalidArgument);
}

async fn delete_refuses_an_assigned_number(backend: Backend) {
    let app = spawn_app(backend).await;
    order(&app, BUSINESS, &["+12065550100"]).await;
    let (account_id, user_id) = account_with_user(&app, "ada@example.com").await;
    app.assign(&account_id, &user_id, "+12065550100")
        .await
        .expect("assigned");
    let before = app.get_number("+12065550100").await;

    let status = expect_code(delete(&app, "+12065550100").await, Code::FailedPrecondition);
    assert_mentions(&status, "assigned");
    let after = app.get_number("+12065550100").await;
    assert_eq!(after, before);
    assert_eq!(after.status(), PhoneNumberStatus::Assigned);
    assert_eq!(after.deletion_time, None);
    assert_eq!(
        app.get_user(&account_id, &user_id)
            .await
            .primary_phone_number,
        "+12065550100"
    );
}

async fn restore_brings_a_number_back(backend: Backend) {
    let app = spawn_app(backend).await;
    order(&app, BUSINESS, &["+12065550100", "+12065550101"]).await;

    let status = expect_code(
        restore(&app, "+12065550101").await,
        Code::FailedPrecondition,
    );
    assert_mentions(&status, "not in the deletion queue");
    assert_eq!(
        app.get_number("+12065550101").await.status(),
        PhoneNumberStatus::Unassigned
    );

    delete(&app, "+12065550100").await.expect("deleted");
    let restored = restore(&app, "+1 206 555 0100").await.expect("restored");
    assert_eq!(restored.status(), PhoneNumberStatus::Unassigned);
    assert_eq!(restored.deletion_time, None);
    assert_eq!(app.get_number("+12065550100").await, restored);

    expect_code(
        restore(&app, "+12065550100").await,
        Code::FailedPrecondition,
    );
    expect_code(restore(&app, "+12065550199").await, Code::NotFound);

    // A restored number is an ordinary inventory number again.
    let (account_id, user_id) = account_with_user(&app, "ada@example.com").await;
    app.assign(&account_id, &user_id, "+12065550100")
        .await
        .expect("a restored number can be assigned");
}

async fn restore_after_the_queue_period_is_not_found(backend: Backend) {
    // The purge runs at start-up and then only after a minute: the expired row is still stored
    // while the test runs, so this checks that an expired number is gone before it is purged.
    let app = spawn_app_with(backend, |s| {
        s.deletion_queue_period = Duration::from_secs(1);
        s.maintenance_interval = Duration::from_secs(3600);
    })
    .await;
    let first = order(&app, BUSINESS, &["+12065550100", "+12065550101"]).await;
    let deleted = delete(&app, "+12065550100").await.expect("deleted");
    let deletion = seconds(&deleted.deletion_time);
    assert!(
        (deletion - (unix_now() + 1)).abs() <= 60,
        "the configured queue period applies"
    );

    wait_until_gone(&app, "+12065550100").await;
    let status = expect_code(restore(&app, "+12065550100").await, Code::NotFound);
    assert_mentions(&status, "+12065550100");
    assert_eq!(
        list_e164(&app, ListPhoneNumbersRequest::default()).await,
        ["+12065550101"]
    );
    assert!(
        list_e164(&app, by_status(PhoneNumberStatus::DeleteInProgress))
            .await
            .is_empty()
    );
    expect_code(delete(&app, "+12065550100").await, Code::NotFound);

    let again = order(&app, BUSINESS, &["+12065550100"]).await;
    assert_eq!(again.status(), PhoneNumberOrderStatus::Successful);
    let number = app.get_number("+12065550100").await;
    assert_eq!(number.status(), PhoneNumberStatus::Unassigned);
    assert_eq!(number.order_id, again.order_id);
    assert_ne!(number.order_id, first.order_id);
    assert_eq!(number.deletion_time, None);
}

async fn expired_numbers_are_purged(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.deletion_queue_period = Duration::from_secs(1);
        s.maintenance_interval = Duration::from_millis(200);
    })
    .await;
    order(&app, BUSINESS, &["+12065550100", "+12065550101"]).await;
    delete(&app, "+12065550100").await.expect("deleted");
    assert_eq!(
        list_e164(&app, by_status(PhoneNumberStatus::DeleteInProgress)).await,
        ["+12065550100"]
    );

    wait_until_gone(&app, "+12065550100").await;
    // Give the background task a few rounds past the deletion time.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        list_e164(&app, by_status(PhoneNumberStatus::DeleteInProgress))
            .await
            .is_empty()
    );
    expect_code(app.try_get_number("+12065550100").await, Code::NotFound);
    expect_code(restore(&app, "+12065550100").await, Code::NotFound);
    assert_eq!(
        list_e164(&app, ListPhoneNumbersRequest::default()).await,
        ["+12065550101"],
        "the purge takes only expired numbers"
    );
    assert_eq!(
        app.get_number("+12065550101").await.status(),
        PhoneNumberStatus::Unassigned
    );

    let again = order(&app, BUSINESS, &["+12065550100"]).await;
    assert_eq!(again.status(), PhoneNumberOrderStatus::Successful);
}

on_both_databases!(
    order_of_valid_numbers_succeeds,
    formatting_variants_are_one_number,
    bad_numbers_fail_alone,
    order_of_only_bad_numbers_fails,
    toll_free_numbers_are_not_business_calling,
    malformed_orders_are_refused,
    unknown_order_is_not_found,
    get_accepts_any_formatting,
    get_refuses_impossible_and_unknown_numbers,
    list_filters,
    list_refuses_unknown_filters,
    list_pages_by_e164,
    calling_name_rules,
    product_type_rules,
    update_mask_is_required_and_checked,
    delete_queues_an_unassigned_number,
    delete_refuses_an_assigned_number,
    restore_brings_a_number_back,
    restore_after_the_queue_period_is_not_found,
    expired_numbers_are_purged,
);
