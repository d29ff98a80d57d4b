//! Hostile fields in every PhoneNumberService request, and hostile numbers inside an order,
//! which fail item by item.

use super::{
    BAD_ENUMS, Case, Fixture, bad_ids, bad_masks, bad_page_tokens, case, huge, run_cases, show,
};
use crate::common::fixtures::mask;
use crate::common::{Backend, TestApp, spawn_app};
use telephony_admin::proto::{
    CreatePhoneNumberOrderRequest, DeletePhoneNumberRequest, GetPhoneNumberOrderRequest,
    GetPhoneNumberRequest, ListPhoneNumbersRequest, OrderedPhoneNumberStatus,
    PhoneNumberOrderStatus, PhoneNumberProductType, PhoneNumberStatus, RestorePhoneNumberRequest,
    UpdatePhoneNumberRequest,
};

fn phone_number_cases<'a>(app: &'a TestApp, f: &'a Fixture) -> Vec<Case<'a>> {
    let mut cases = Vec::new();
    let order = move |product_type: i32, e164_phone_numbers: Vec<String>| async move {
        app.numbers()
            .create_phone_number_order(CreatePhoneNumberOrderRequest {
                product_type,
                e164_phone_numbers,
            })
            .await
            .map(drop)
    };
    let business = PhoneNumberProductType::BusinessCalling as i32;
    for product_type in BAD_ENUMS.into_iter().chain([0]) {
        cases.push(case(
            format!("CreatePhoneNumberOrder product_type {product_type}"),
            "product_type",
            order(product_type, vec!["+12065550150".into()]),
        ));
    }
    cases.push(case(
        "CreatePhoneNumberOrder no numbers",
        "e164_phone_numbers",
        order(business, Vec::new()),
    ));
    cases.push(case(
        "CreatePhoneNumberOrder 1001 numbers",
        "e164_phone_numbers",
        order(
            business,
            (0..1001).map(|i| format!("+1425555{i:04}")).collect(),
        ),
    ));
    for id in bad_ids() {
        cases.push(case(
            format!("GetPhoneNumberOrder order_id {}", show(&id)),
            "order_id",
            async move {
                app.numbers()
                    .get_phone_number_order(GetPhoneNumberOrderRequest { order_id: id })
                    .await
                    .map(drop)
            },
        ));
    }
    for number in [
        String::new(),
        huge(),
        "abc".into(),
        "+1".into(),
        "12065550100".into(),
        "+1 (206) 555-0100 ext. 5".into(),
        "+999 1234567".into(),
        "+1206555\u{0}0100".into(),
    ] {
        let label = show(&number);
        let (a, b, c, d) = (number.clone(), number.clone(), number.clone(), number);
        cases.push(case(
            format!("GetPhoneNumber {label}"),
            "phone_number_id",
            async move {
                app.numbers()
                    .get_phone_number(GetPhoneNumberRequest { phone_number_id: a })
                    .await
                    .map(drop)
            },
        ));
        cases.push(case(
            format!("UpdatePhoneNumber {label}"),
            "phone_number_id",
            async move {
                app.numbers()
                    .update_phone_number(UpdatePhoneNumberRequest {
                        phone_number_id: b,
                        product_type: 0,
                        calling_name: "Desk".into(),
                        update_mask: Some(mask(&["calling_name"])),
                    })
                    .await
                    .map(drop)
            },
        ));
        cases.push(case(
            format!("DeletePhoneNumber {label}"),
            "phone_number_id",
            async move {
                app.numbers()
                    .delete_phone_number(DeletePhoneNumberRequest { phone_number_id: c })
                    .await
                    .map(drop)
            },
        ));
        cases.push(case(
            format!("RestorePhoneNumber {label}"),
            "phone_number_id",
            async move {
                app.numbers()
                    .restore_phone_number(RestorePhoneNumberRequest { phone_number_id: d })
                    .await
                    .map(drop)
            },
        ));
    }
    cases.push(case(
        "GetPhoneNumberOrder of a real order id with a suffix",
        "order_id",
        async move {
            app.numbers()
                .get_phone_number_order(GetPhoneNumberOrderRequest {
                    order_id: format!("{}-0", f.order_id),
                })
                .await
                .map(drop)
        },
    ));
    let list = move |request: ListPhoneNumbersRequest| async move {
        app.numbers().list_phone_numbers(request).await.map(drop)
    };
    for value in BAD_ENUMS {
        cases.push(case(
            format!("ListPhoneNumbers status {value}"),
            "status",
            list(ListPhoneNumbersRequest {
                status: value,
                ..Default::default()
            }),
        ));
        cases.push(case(
            format!("ListPhoneNumbers product_type {value}"),
            "product_type",
            list(ListPhoneNumbersRequest {
                product_type: value,
                ..Default::default()
            }),
        ));
    }
    for id in bad_ids().into_iter().filter(|id| !id.is_empty()) {
        cases.push(case(
            format!("ListPhoneNumbers account_id {}", show(&id)),
            "account_id",
            list(ListPhoneNumbersRequest {
                account_id: id.clone(),
                ..Default::default()
            }),
        ));
        cases.push(case(
            format!("ListPhoneNumbers user_id {}", show(&id)),
            "user_id",
            list(ListPhoneNumbersRequest {
                user_id: id,
                ..Default::default()
            }),
        ));
    }
    for page_token in bad_page_tokens() {
        cases.push(case(
            format!("ListPhoneNumbers page_token {}", show(&page_token)),
            "page_token",
            list(ListPhoneNumbersRequest {
                page_token,
                ..Default::default()
            }),
        ));
    }
    let update = move |product_type: i32, calling_name: String, update_mask| async move {
        app.numbers()
            .update_phone_number(UpdatePhoneNumberRequest {
                phone_number_id: f.assigned.clone(),
                product_type,
                calling_name,
                update_mask,
            })
            .await
            .map(drop)
    };
    cases.push(case(
        "UpdatePhoneNumber without a mask",
        "update_mask",
        update(business, "Desk".into(), None),
    ));
    for (i, bad) in bad_masks().into_iter().enumerate() {
        cases.push(case(
            format!("UpdatePhoneNumber bad mask #{i}"),
            "update_mask",
            update(business, "Desk".into(), bad),
        ));
    }
    for name in [
        huge(),
        "A".into(),
        "Zoë".into(),
        "Front-Desk".into(),
        "a\0b".into(),
    ] {
        cases.push(case(
            format!("UpdatePhoneNumber calling_name {}", show(&name)),
            "calling_name",
            update(business, name, Some(mask(&["calling_name"]))),
        ));
    }
    for value in BAD_ENUMS {
        cases.push(case(
            format!("UpdatePhoneNumber product_type {value}"),
            "product_type",
            update(value, String::new(), Some(mask(&["product_type"]))),
        ));
    }
    cases.push(case(
        "RestorePhoneNumber of the deleted number, written with a bad suffix",
        "phone_number_id",
        async move {
            app.numbers()
                .restore_phone_number(RestorePhoneNumberRequest {
                    phone_number_id: format!("{}x", f.deleted),
                })
                .await
                .map(drop)
        },
    ));
    cases
}

async fn hostile_phone_number_requests(backend: Backend) {
    run_cases(backend, phone_number_cases).await;
}

/// Numbers in an order fail one by one: garbage entries are reported as failed items, nothing
/// enters the inventory, and a good number in the same order still succeeds.
async fn hostile_numbers_in_an_order_fail_one_by_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let hostile = vec![
        String::new(),
        huge(),
        "not a number".into(),
        "+1".into(),
        "+1206555\u{0}0100".into(),
        "'; DROP TABLE phone_numbers; --".into(),
        "+18005550199".into(), // toll-free: not BUSINESS_CALLING
    ];
    let order = app
        .numbers()
        .create_phone_number_order(CreatePhoneNumberOrderRequest {
            product_type: PhoneNumberProductType::BusinessCalling as i32,
            e164_phone_numbers: hostile.clone(),
        })
        .await
        .expect("an order of bad numbers is answered item by item")
        .into_inner();
    assert_eq!(order.status, PhoneNumberOrderStatus::Failed as i32);
    assert_eq!(order.ordered_phone_numbers.len(), hostile.len());
    for item in &order.ordered_phone_numbers {
        assert_eq!(
            item.status,
            OrderedPhoneNumberStatus::Failed as i32,
            "{}",
            show(&item.e164_phone_number)
        );
        assert!(!item.reason.is_empty());
        assert!(item.reason.len() < 1024, "the reason echoes the input");
    }
    let inventory = app.all_numbers(ListPhoneNumbersRequest::default()).await;
    assert!(inventory.is_empty(), "{inventory:?}");

    let mixed = app
        .numbers()
        .create_phone_number_order(CreatePhoneNumberOrderRequest {
            product_type: PhoneNumberProductType::BusinessCalling as i32,
            e164_phone_numbers: vec!["garbage".into(), "+1 206 555 0100".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mixed.status, PhoneNumberOrderStatus::Partial as i32);
    let inventory = app.all_numbers(ListPhoneNumbersRequest::default()).await;
    assert_eq!(inventory.len(), 1);
    assert_eq!(inventory[0].e164_phone_number, "+12065550100");
    assert_eq!(inventory[0].status, PhoneNumberStatus::Unassigned as i32);
}

on_both_databases!(
    hostile_phone_number_requests,
    hostile_numbers_in_an_order_fail_one_by_one,
);
