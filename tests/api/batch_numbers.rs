//! PhoneNumberService's batches through the real gRPC interface: changing numbers and queueing
//! them for deletion item by item, dry runs, atomic batches and organisation-only access.

use telephony_admin::keys::Role;
use telephony_admin::proto::{
    BatchDeletePhoneNumbersRequest, BatchPhoneNumberResult, BatchUpdatePhoneNumbersRequest,
    DeletePhoneNumberRequest, ListPhoneNumbersRequest, PhoneNumber, PhoneNumberProductType,
    PhoneNumberStatus, UpdatePhoneNumberRequest,
    batch_update_phone_numbers_request::Item as NumberChange,
};
use tonic::Code;

use crate::common::account_scope;
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
        .create_key(Role::Admin, account_scope(&account.account_id))
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

/// A number with what differs between two inventories holding it cleared: times, the order,
/// the holder's ids (whether it has one stays).
fn twin_of(number: PhoneNumber) -> PhoneNumber {
    PhoneNumber {
        create_time: None,
        update_time: None,
        deletion_time: number.deletion_time.map(|_| Default::default()),
        order_id: String::new(),
        association: number.association.map(|_| Default::default()),
        ..number
    }
}

/// Every number of the inventory, twin-comparable.
async fn inventory(app: &TestApp) -> Vec<PhoneNumber> {
    let numbers = app.all_numbers(ListPhoneNumbersRequest::default()).await;
    numbers.into_iter().map(twin_of).collect()
}

/// Two inventories holding `numbers`, `assigned` given to a user: one for a batch, its twin for
/// the same items one single RPC at a time.
async fn twin_inventories(backend: Backend, numbers: &[String], assigned: &str) -> [TestApp; 2] {
    let inventory = || async {
        let app = spawn_app(backend).await;
        app.order_business_numbers(numbers).await;
        let account = app.create_account("Holder").await;
        let users = bulk_users(&app, &account.account_id, "holder", 1).await;
        app.assign(&account.account_id, &users[0].user_id, assigned)
            .await
            .expect("assigned");
        app
    };
    [inventory().await, inventory().await]
}

/// Each batch result is what the single RPC answered for the same item on the twin.
fn assert_same_answers(
    results: &[BatchPhoneNumberResult],
    singles: Vec<Result<PhoneNumber, tonic::Status>>,
) {
    assert_eq!(results.len(), singles.len());
    for (index, (result, single)) in results.iter().zip(singles).enumerate() {
        match single {
            Ok(number) => {
                assert_eq!(code_of(&result.status), Code::Ok, "item {index}");
                let batch = result.phone_number.clone().map(twin_of);
                assert_eq!(batch, Some(twin_of(number)), "item {index}");
            }
            Err(status) => assert_eq!(result.status, Some(rpc_status(&status)), "item {index}"),
        }
    }
}

/// A few hundred changes as one batch, with numbers named twice, an assigned number's product
/// type refused, an unknown number and a refused item, answer item for item as the same changes
/// made one UpdatePhoneNumber at a time on a twin inventory, and leave the same numbers.
async fn a_large_update_answers_as_single_updates_do(backend: Backend) {
    let numbers = block(7300, 300);
    let [app, twin] = twin_inventories(backend, &numbers, &numbers[10]).await;
    let change =
        |id: &str, name: &str, product: PhoneNumberProductType, paths: &[&str]| NumberChange {
            phone_number_id: id.into(),
            product_type: product as i32,
            calling_name: name.into(),
            update_mask: Some(mask(paths)),
        };
    let mut items: Vec<NumberChange> = numbers
        .iter()
        .enumerate()
        .map(|(i, id)| match i % 3 {
            0 => change(
                id,
                &format!("Desk {i}"),
                Default::default(),
                &["calling_name"],
            ),
            1 => change(
                id,
                "",
                PhoneNumberProductType::VoiceConnector,
                &["product_type"],
            ),
            _ => change(
                id,
                &format!("Line {i}"),
                PhoneNumberProductType::SipMediaApplicationDialIn,
                &["calling_name", "product_type"],
            ),
        })
        .collect();
    let any = PhoneNumberProductType::BusinessCalling;
    items.insert(
        150,
        change("+12065559995", "Nobody", any, &["calling_name"]),
    );
    items.push(change(
        &numbers[1],
        "Again",
        any,
        &["calling_name", "product_type"],
    ));
    items.push(change(&numbers[0], "", any, &["calling_name"]));
    items.push(change(&numbers[10], "Held", any, &["calling_name"]));
    items.push(change(&numbers[2], "Bad!", any, &["calling_name"]));
    let request = BatchUpdatePhoneNumbersRequest {
        items: items.clone(),
        ..Default::default()
    };

    let before = inventory(&app).await;
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
    assert_eq!(inventory(&app).await, before, "a dry run changes nothing");
    let results = app
        .numbers()
        .batch_update_phone_numbers(request)
        .await
        .expect("answered")
        .into_inner()
        .results;
    let twins = |results: &[BatchPhoneNumberResult]| -> Vec<_> {
        let strip = |r: &BatchPhoneNumberResult| (r.status.clone(), r.phone_number.clone());
        results
            .iter()
            .map(strip)
            .map(|(status, number)| (status, number.map(twin_of)))
            .collect()
    };
    assert_eq!(twins(&dry), twins(&results));

    let mut singles = Vec::new();
    for item in &items {
        let single = twin
            .numbers()
            .update_phone_number(UpdatePhoneNumberRequest {
                phone_number_id: item.phone_number_id.clone(),
                product_type: item.product_type,
                calling_name: item.calling_name.clone(),
                update_mask: item.update_mask.clone(),
            })
            .await;
        singles.push(single.map(|answer| answer.into_inner()));
    }
    assert_same_answers(&results, singles);
    let refused: Vec<(usize, Code)> = codes(&results)
        .into_iter()
        .enumerate()
        .filter(|(_, code)| *code != Code::Ok)
        .collect();
    let last = results.len() - 1;
    assert_eq!(
        refused,
        [
            (10, Code::FailedPrecondition),
            (150, Code::NotFound),
            (last, Code::InvalidArgument)
        ]
    );
    assert_eq!(inventory(&app).await, inventory(&twin).await);
    let again = app.get_number(&numbers[1]).await;
    assert_eq!(
        (again.calling_name.as_str(), again.product_type),
        ("Again", PhoneNumberProductType::BusinessCalling as i32)
    );
    let held = app.get_number(&numbers[10]).await;
    assert_eq!(
        (held.calling_name.as_str(), held.product_type),
        ("Held", PhoneNumberProductType::BusinessCalling as i32)
    );
}

/// A few hundred deletions as one batch, with an assigned number, an unknown one and a number
/// named twice: atomic, the first failure is named and nothing is queued; best effort, each
/// item is answered as DeletePhoneNumber answers it one at a time on a twin inventory, and the
/// same numbers are queued.
async fn a_large_deletion_answers_as_single_deletions_do(backend: Backend) {
    let numbers = block(7600, 300);
    let [app, twin] = twin_inventories(backend, &numbers, &numbers[20]).await;
    let mut ids = numbers.clone();
    ids.insert(100, "+12065559994".into());
    ids.push(numbers[5].clone());

    let before = inventory(&app).await;
    let results = delete_batch(&app, None, &ids, false, true).await;
    let refused: Vec<(usize, Code)> = codes(&results)
        .into_iter()
        .enumerate()
        .filter(|(_, code)| *code != Code::Aborted)
        .collect();
    assert_eq!(refused, [(20, Code::FailedPrecondition)]);
    let aborted = results[0].status.as_ref().expect("a status");
    assert!(aborted.message.contains("item 20"), "{aborted:?}");
    assert_eq!(
        inventory(&app).await,
        before,
        "an atomic failure queues nothing"
    );

    let results = delete_batch(&app, None, &ids, false, false).await;
    let mut singles = Vec::new();
    for id in &ids {
        let single = twin
            .numbers()
            .delete_phone_number(DeletePhoneNumberRequest {
                phone_number_id: id.clone(),
            })
            .await;
        singles.push(single.map(|answer| answer.into_inner()));
    }
    assert_same_answers(&results, singles);
    let refused: Vec<(usize, Code)> = codes(&results)
        .into_iter()
        .enumerate()
        .filter(|(_, code)| *code != Code::Ok)
        .collect();
    assert_eq!(
        refused,
        [
            (20, Code::FailedPrecondition),
            (100, Code::NotFound),
            (ids.len() - 1, Code::FailedPrecondition)
        ]
    );
    assert_eq!(inventory(&app).await, inventory(&twin).await);
    let queued = app
        .all_numbers(ListPhoneNumbersRequest {
            status: PhoneNumberStatus::DeleteInProgress as i32,
            ..Default::default()
        })
        .await;
    assert_eq!(queued.len(), numbers.len() - 1);
    let deletion_times: std::collections::HashSet<(i64, i32)> = queued
        .iter()
        .map(|n| n.deletion_time.as_ref().expect("a deletion time"))
        .map(|time| (time.seconds, time.nanos))
        .collect();
    assert_eq!(deletion_times.len(), 1, "one batch, one deletion time");
}

on_both_databases!(
    numbers_are_changed_per_item_as_update_phone_number_does,
    numbers_are_deleted_per_item_and_atomically,
    an_account_key_is_refused_every_item,
    a_large_update_answers_as_single_updates_do,
    a_large_deletion_answers_as_single_deletions_do,
);
