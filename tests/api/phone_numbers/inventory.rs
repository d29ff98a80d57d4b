//! Reading the inventory: GetPhoneNumber in any formatting, and ListPhoneNumbers with its
//! filters and pages.

use super::{
    BUSINESS, LONDON, TOLL_FREE, VOICE, account_with_user, assert_mentions, by_status, delete,
    expect_code, list, list_e164, order,
};
use crate::common::{Backend, spawn_app};
use telephony_admin::proto::{ListPhoneNumbersRequest, PhoneNumberCapabilities, PhoneNumberStatus};
use tonic::Code;

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

on_both_databases!(
    get_accepts_any_formatting,
    get_refuses_impossible_and_unknown_numbers,
    list_filters,
    list_refuses_unknown_filters,
    list_pages_by_e164,
);
