//! The inventory's new reads through the real gRPC interface: ListPhoneNumbers' prefix, country
//! and type filters with keyset pages, ListPhoneNumberOrders newest first, and a number's full
//! history of holders (ListPhoneNumberAssignments), written by single and batch RPCs alike.

use telephony_admin::keys::Role;
use telephony_admin::proto::{
    BatchAssignPhoneNumbersRequest, CreatePhoneNumberOrderRequest, DeleteUserRequest,
    ListPhoneNumberAssignmentsRequest, ListPhoneNumberOrdersRequest, ListPhoneNumbersRequest,
    PhoneNumberAssignment, PhoneNumberProductType, PhoneNumberStatus, PhoneNumberType,
    batch_assign_phone_numbers_request::Item as Assignment,
};
use tonic::Code;

use crate::common::account_scope;
use crate::common::batch::code_of;
use crate::common::{Backend, TestApp, spawn_app};

/// Every number matching `filter`, two per page, checking that pages follow E.164 order.
async fn listed(app: &TestApp, filter: ListPhoneNumbersRequest) -> Vec<String> {
    let mut numbers = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = app
            .numbers()
            .list_phone_numbers(ListPhoneNumbersRequest {
                page_size: 2,
                page_token,
                ..filter.clone()
            })
            .await
            .unwrap_or_else(|s| panic!("list {filter:?}: {s:?}"))
            .into_inner();
        assert!(page.phone_numbers.len() <= 2);
        numbers.extend(page.phone_numbers.into_iter().map(|n| n.e164_phone_number));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut sorted = numbers.clone();
    sorted.sort();
    assert_eq!(numbers, sorted, "pages come in E.164 order");
    numbers
}

async fn order(app: &TestApp, product_type: PhoneNumberProductType, numbers: &[&str]) -> String {
    let order = app
        .numbers()
        .create_phone_number_order(CreatePhoneNumberOrderRequest {
            product_type: product_type as i32,
            e164_phone_numbers: numbers.iter().map(|n| n.to_string()).collect(),
        })
        .await
        .expect("order")
        .into_inner();
    assert!(
        order
            .ordered_phone_numbers
            .iter()
            .all(|n| n.reason.is_empty()),
        "{order:?}"
    );
    order.order_id
}

async fn numbers_filter_by_prefix_country_and_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let seattle = [
        "+12065551000",
        "+12065551001",
        "+12065551002",
        "+12065551003",
        "+12065551004",
    ];
    let redmond = ["+14255551000", "+14255551001"];
    let toronto = ["+14165550100", "+14165550101", "+14165550102"];
    let london = ["+442079460000", "+442079460001", "+442079460002"];
    let toll_free = ["+18005550100", "+18005550101"];
    for batch in [&seattle[..], &redmond, &toronto, &london] {
        order(&app, PhoneNumberProductType::BusinessCalling, batch).await;
    }
    order(&app, PhoneNumberProductType::VoiceConnector, &toll_free).await;
    let filter = |prefix: &str, country: &str, kind: PhoneNumberType| ListPhoneNumbersRequest {
        e164_prefix: prefix.into(),
        country: country.into(),
        r#type: kind as i32,
        ..Default::default()
    };
    let strings = |numbers: &[&str]| numbers.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    use PhoneNumberType::{Local, TollFree, Unspecified};

    assert_eq!(
        listed(&app, filter("+1206", "", Unspecified)).await,
        strings(&seattle)
    );
    assert_eq!(
        listed(&app, filter("", "ca", Unspecified)).await,
        strings(&toronto)
    );
    assert_eq!(
        listed(&app, filter("", "US", TollFree)).await,
        strings(&toll_free)
    );
    assert_eq!(listed(&app, filter("+1", "", Local)).await.len(), 10);
    assert_eq!(
        listed(&app, filter("+44", "GB", Local)).await,
        strings(&london)
    );
    assert!(
        listed(&app, filter("+44", "US", Unspecified))
            .await
            .is_empty()
    );
    assert_eq!(
        listed(&app, filter("+1", "US", Local)).await,
        [strings(&seattle), strings(&redmond)].concat()
    );
    let unassigned_uk = ListPhoneNumbersRequest {
        status: PhoneNumberStatus::Unassigned as i32,
        ..filter("", "gb", Local)
    };
    assert_eq!(listed(&app, unassigned_uk).await, strings(&london));

    for (bad, field) in [
        (filter("1206", "", Unspecified), "e164_prefix"),
        (filter("+12a", "", Unspecified), "e164_prefix"),
        (filter("", "USA", Unspecified), "country"),
        (
            ListPhoneNumbersRequest {
                r#type: 7,
                ..Default::default()
            },
            "type",
        ),
    ] {
        let refused = app
            .numbers()
            .list_phone_numbers(bad)
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().contains(field), "{refused:?}");
    }
    // A page token is tied to its filters.
    let first = app
        .numbers()
        .list_phone_numbers(ListPhoneNumbersRequest {
            page_size: 1,
            ..filter("+1206", "", Unspecified)
        })
        .await
        .expect("first page")
        .into_inner();
    let refused = app
        .numbers()
        .list_phone_numbers(ListPhoneNumbersRequest {
            page_size: 1,
            page_token: first.next_page_token,
            ..filter("+1425", "", Unspecified)
        })
        .await
        .expect_err("another filter");
    assert_eq!(refused.code(), Code::InvalidArgument);
}

async fn orders_are_listed_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ids = Vec::new();
    for number in ["+12065552000", "+12065552001", "+12065552002"] {
        ids.push(order(&app, PhoneNumberProductType::BusinessCalling, &[number]).await);
    }
    ids.reverse();
    let mut listed = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = app
            .numbers()
            .list_phone_number_orders(ListPhoneNumberOrdersRequest {
                page_size: 2,
                page_token,
            })
            .await
            .expect("list orders")
            .into_inner();
        listed.extend(page.phone_number_orders);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(
        listed
            .iter()
            .map(|o| o.order_id.clone())
            .collect::<Vec<_>>(),
        ids
    );
    assert_eq!(
        listed[0].ordered_phone_numbers[0].e164_phone_number,
        "+12065552002"
    );
    let account = app.create_account("Scoped").await;
    let key = app
        .create_key(Role::Admin, account_scope(&account.account_id))
        .await;
    let refused = app
        .numbers_as(Some(&key))
        .list_phone_number_orders(ListPhoneNumberOrdersRequest::default())
        .await
        .expect_err("organisation keys only");
    assert_eq!(refused.code(), Code::PermissionDenied);
}

async fn history(app: &TestApp, key: &str, number: &str) -> Vec<PhoneNumberAssignment> {
    let mut periods = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = app
            .numbers_as(Some(key))
            .list_phone_number_assignments(ListPhoneNumberAssignmentsRequest {
                phone_number_id: number.into(),
                page_size: 1,
                page_token,
            })
            .await
            .expect("history")
            .into_inner();
        periods.extend(page.phone_number_assignments);
        if page.next_page_token.is_empty() {
            return periods;
        }
        page_token = page.next_page_token;
    }
}

async fn a_numbers_history_keeps_every_holder(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("History").await;
    let other = app.create_account("Elsewhere").await;
    let number = "+12065553000";
    order(&app, PhoneNumberProductType::BusinessCalling, &[number]).await;
    let ann = app
        .create_user(&account.account_id, "ann@example.com")
        .await;
    let bob = app
        .create_user(&account.account_id, "bob@example.com")
        .await;
    let cat = app.create_user(&other.account_id, "cat@example.com").await;

    app.assign(&account.account_id, &ann.user_id, number)
        .await
        .expect("ann");
    app.unassign(&account.account_id, &ann.user_id, true)
        .await
        .expect("ann gives it back");
    // Neither a dry run nor a failed atomic batch leaves a period.
    for (validate_only, atomic, second) in [(true, false, ""), (false, true, "+12065559990")] {
        let mut items = vec![Assignment {
            emergency_location_id: String::new(),
            user_id: bob.user_id.clone(),
            e164_phone_number: number.into(),
        }];
        if !second.is_empty() {
            items.push(Assignment {
                emergency_location_id: String::new(),
                user_id: ann.user_id.clone(),
                e164_phone_number: second.into(),
            });
        }
        app.telephony()
            .batch_assign_phone_numbers(BatchAssignPhoneNumbersRequest {
                account_id: account.account_id.clone(),
                items,
                validate_only,
                atomic,
                request_id: String::new(),
            })
            .await
            .expect("answered");
    }
    assert_eq!(history(&app, &app.admin_key, number).await.len(), 1);
    let results = app
        .telephony()
        .batch_assign_phone_numbers(BatchAssignPhoneNumbersRequest {
            account_id: account.account_id.clone(),
            items: vec![Assignment {
                emergency_location_id: String::new(),
                user_id: bob.user_id.clone(),
                e164_phone_number: "+1 (206) 555-3000".into(),
            }],
            ..Default::default()
        })
        .await
        .expect("bob")
        .into_inner()
        .results;
    assert_eq!(code_of(&results[0].status), Code::Ok);
    app.users()
        .delete_user(DeleteUserRequest {
            account_id: account.account_id.clone(),
            user_id: bob.user_id.clone(),
        })
        .await
        .expect("bob is deleted");
    app.assign(&other.account_id, &cat.user_id, number)
        .await
        .expect("cat");

    let periods = history(&app, &app.admin_key, number).await;
    let holders: Vec<_> = periods
        .iter()
        .map(|p| {
            (
                p.account_id.as_str(),
                p.user_id.as_str(),
                p.unassign_time.is_some(),
            )
        })
        .collect();
    assert_eq!(
        holders,
        [
            (other.account_id.as_str(), cat.user_id.as_str(), false),
            (account.account_id.as_str(), bob.user_id.as_str(), true),
            (account.account_id.as_str(), ann.user_id.as_str(), true),
        ],
        "newest first, the deleted user's period kept"
    );
    let seconds = |t: &Option<prost_types::Timestamp>| {
        let t = t.as_ref().expect("a time");
        (t.seconds, t.nanos)
    };
    for pair in periods.windows(2) {
        assert!(seconds(&pair[1].unassign_time) <= seconds(&pair[0].assign_time));
    }
    for period in &periods[1..] {
        assert!(seconds(&period.assign_time) <= seconds(&period.unassign_time));
        assert_eq!(period.e164_phone_number, number);
    }

    // An account key sees its own account's periods only.
    let key = app
        .create_key(Role::Viewer, account_scope(&account.account_id))
        .await;
    let own: Vec<_> = history(&app, &key, number)
        .await
        .into_iter()
        .map(|p| p.user_id)
        .collect();
    assert_eq!(own, [bob.user_id.clone(), ann.user_id.clone()]);
    assert!(
        history(&app, &app.admin_key, "+12065553001")
            .await
            .is_empty()
    );
    let refused = app
        .numbers()
        .list_phone_number_assignments(ListPhoneNumberAssignmentsRequest {
            phone_number_id: "not a number".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad number");
    assert_eq!(refused.code(), Code::InvalidArgument);
}

on_both_databases!(
    numbers_filter_by_prefix_country_and_type,
    orders_are_listed_newest_first,
    a_numbers_history_keeps_every_holder,
);
