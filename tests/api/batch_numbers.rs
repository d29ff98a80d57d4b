//! PhoneNumberService's batches through the real gRPC interface: changing numbers and queueing
//! them for deletion item by item, dry runs, atomic batches and organisation-only access.

use telephony_admin::keys::{Role, Scope};
use telephony_admin::proto::{
    BatchDeletePhoneNumbersRequest, BatchPhoneNumberResult, BatchUpdatePhoneNumbersRequest,
    DeletePhoneNumberRequest, PhoneNumberProductType, PhoneNumberStatus, UpdatePhoneNumberRequest,
    batch_update_phone_numbers_request::Item as NumberChange,
};
use tonic::Code;

use crate::common::batch::{block, bulk_users, code_of, rpc_status};
use crate::common::fixtures::mask;
use crate::common::{Backend, TestApp, spawn_app};

fn codes(results: &[BatchPhoneNumberResult]) -> Vec<Code> {
    results.iter().map(|r| code_of(&r.status)).collect()
}

async fn delete_batch(
    app: &TestApp,
    key: Option<&str>,
    ids: &[String],
    validate_only: bool,
    atomic: bool,
) -> Vec<BatchPhoneNumberResult> {
    app.numbers_as(Some(key.unwrap_or(&app.admin_key)))
        .batch_delete_phone_numbers(BatchDeletePhoneNumbersRequest {
            phone_number_ids: ids.to_vec(),
            validate_only,
            atomic,
            request_id: String::new(),
        })
        .await
        .expect("answered")
        .into_inner()
        .results
}

async fn numbers_are_changed_per_item_as_update_phone_number_does(backend: Backend) {
    let app = spawn_app(backend).await;
    let numbers = block(7000, 3);
    app.order_business_numbers(&numbers).await;
    let change = |id: &str, name: &str, paths: &[&str]| NumberChange {
        phone_number_id: id.into(),
        product_type: PhoneNumberProductType::VoiceConnector as i32,
        calling_name: name.into(),
        update_mask: Some(mask(paths)),
    };
    let items = vec![
        change(&numbers[0], "Front Desk", &["calling_name"]),
        change(&numbers[1], "Bad!name", &["calling_name"]),
        change("+12065559995", "Nobody", &["calling_name"]),
        change(&numbers[2], "Sales", &["calling_name", "product_type"]),
        change(&numbers[0], "", &[]),
    ];
    let request = BatchUpdatePhoneNumbersRequest {
        items: items.clone(),
        ..Default::default()
    };
    let dry = app
        .numbers()
        .batch_update_phone_numbers(BatchUpdatePhoneNumbersRequest {
            validate_only: true,
            ..request.clone()
        })
        .await
        .expect("answered")
        .into_inner()
        .results;
    assert_eq!(app.get_number(&numbers[0]).await.calling_name, "");
    let results = app
        .numbers()
        .batch_update_phone_numbers(request)
        .await
        .expect("answered")
        .into_inner()
        .results;
    assert_eq!(
        codes(&results),
        [
            Code::Ok,
            Code::InvalidArgument,
            Code::NotFound,
            Code::Ok,
            Code::InvalidArgument
        ]
    );
    let strip = |results: Vec<BatchPhoneNumberResult>| -> Vec<_> {
        results
            .into_iter()
            .map(|r| {
                let number = r.phone_number.map(|mut n| {
                    n.update_time = None;
                    n
                });
                (r.index, r.status, number)
            })
            .collect()
    };
    assert_eq!(strip(dry), strip(results.clone()));
    for (item, result) in items.iter().zip(&results) {
        if code_of(&result.status) == Code::Ok {
            continue;
        }
        let single = app
            .numbers()
            .update_phone_number(UpdatePhoneNumberRequest {
                phone_number_id: item.phone_number_id.clone(),
                product_type: item.product_type,
                calling_name: item.calling_name.clone(),
                update_mask: item.update_mask.clone(),
            })
            .await
            .expect_err("fails alone too");
        assert_eq!(result.status, Some(rpc_status(&single)), "{item:?}");
    }
    assert_eq!(app.get_number(&numbers[0]).await.calling_name, "Front Desk");
    let sales = app.get_number(&numbers[2]).await;
    assert_eq!(sales.calling_name, "Sales");
    assert_eq!(
        sales.product_type,
        PhoneNumberProductType::VoiceConnector as i32
    );
}

async fn numbers_are_deleted_per_item_and_atomically(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Deletes").await;
    let users = bulk_users(&app, &account.account_id, "del", 1).await;
    let numbers = block(7100, 4);
    app.order_business_numbers(&numbers).await;
    app.assign(&account.account_id, &users[0].user_id, &numbers[3])
        .await
        .expect("assigned");

    // Atomic: the assigned number fails, nothing is queued.
    let results = delete_batch(&app, None, &numbers, false, true).await;
    assert_eq!(
        codes(&results),
        [
            Code::Aborted,
            Code::Aborted,
            Code::Aborted,
            Code::FailedPrecondition
        ]
    );
    for number in &numbers[..3] {
        assert_eq!(
            app.get_number(number).await.status,
            PhoneNumberStatus::Unassigned as i32
        );
    }

    // Best effort, with one number twice: the second time it is already queued.
    let mut ids = numbers.clone();
    ids.push(numbers[0].clone());
    let results = delete_batch(&app, None, &ids, false, false).await;
    assert_eq!(
        codes(&results),
        [
            Code::Ok,
            Code::Ok,
            Code::Ok,
            Code::FailedPrecondition,
            Code::FailedPrecondition
        ]
    );
    for (id, result) in ids.iter().zip(&results).skip(3) {
        let single = app
            .numbers()
            .delete_phone_number(DeletePhoneNumberRequest {
                phone_number_id: id.clone(),
            })
            .await
            .expect_err("fails alone too");
        assert_eq!(result.status, Some(rpc_status(&single)));
    }
    assert_eq!(
        results[0].phone_number.as_ref().unwrap().status,
        PhoneNumberStatus::DeleteInProgress as i32
    );
}

async fn an_account_key_is_refused_every_item(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Scoped").await;
    let numbers = block(7200, 2);
    app.order_business_numbers(&numbers).await;
    let key = app
        .create_key(Role::Admin, Scope::Account(account.account_id.clone()))
        .await;
    let results = delete_batch(&app, Some(&key), &numbers, false, false).await;
    let single = app
        .numbers_as(Some(&key))
        .delete_phone_number(DeletePhoneNumberRequest {
            phone_number_id: numbers[0].clone(),
        })
        .await
        .expect_err("organisation keys only");
    assert_eq!(single.code(), Code::PermissionDenied);
    for result in &results {
        assert_eq!(result.status, Some(rpc_status(&single)));
    }
    assert_eq!(
        app.get_number(&numbers[0]).await.status,
        PhoneNumberStatus::Unassigned as i32
    );
}

on_both_databases!(
    numbers_are_changed_per_item_as_update_phone_number_does,
    numbers_are_deleted_per_item_and_atomically,
    an_account_key_is_refused_every_item,
);
