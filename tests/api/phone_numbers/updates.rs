//! UpdatePhoneNumber: calling name and product type rules, and the update mask.

use super::{BUSINESS, TOLL_FREE, VOICE, account_with_user, assert_mentions, expect_code, order};
use crate::common::{Backend, TestApp, spawn_app};
use prost_types::FieldMask;
use telephony_admin::proto::{PhoneNumber, PhoneNumberProductType, UpdatePhoneNumberRequest};
use tonic::{Code, Status};

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

on_both_databases!(
    calling_name_rules,
    product_type_rules,
    update_mask_is_required_and_checked,
);
