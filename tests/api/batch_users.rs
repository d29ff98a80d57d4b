//! UserService's batches through the real gRPC interface: creating and changing users item by
//! item, conflicts inside one batch, dry runs, atomic batches and per-item access control.

use telephony_admin::keys::{Role, Scope};
use telephony_admin::proto::{
    BatchCreateUsersRequest, BatchUpdateUsersRequest, BatchUserResult, LicenseType,
    UpdateUserRequest, User, batch_create_users_request::Item as NewUser,
    batch_update_users_request::Item as UserChange,
};
use tonic::Code;

use crate::common::account_scope;
use crate::common::batch::{bulk_users, code_of, rpc_status, timeless};
use crate::common::fixtures::{UNKNOWN_ID, mask, new_user};
use crate::common::{Backend, TestApp, spawn_app};

fn new(email: &str) -> NewUser {
    NewUser {
        email: email.into(),
        display_name: "Bulk User".into(),
        license_type: LicenseType::Pro as i32,
        ..Default::default()
    }
}

async fn create_batch(
    app: &TestApp,
    account_id: &str,
    items: Vec<NewUser>,
    validate_only: bool,
    atomic: bool,
) -> Vec<BatchUserResult> {
    app.users()
        .batch_create_users(BatchCreateUsersRequest {
            account_id: account_id.into(),
            items,
            validate_only,
            atomic,
            request_id: String::new(),
        })
        .await
        .expect("answered")
        .into_inner()
        .results
}

/// The result with what differs between two runs (ids, times) cleared.
fn comparable(results: Vec<BatchUserResult>) -> Vec<BatchUserResult> {
    results
        .into_iter()
        .map(|mut r| {
            r.user = r.user.map(|u| telephony_admin::proto::User {
                user_id: String::new(),
                ..timeless(u)
            });
            r
        })
        .collect()
}

async fn created_users_answer_per_item_as_create_user_does(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("People").await;
    app.create_user(&account.account_id, "taken@example.com")
        .await;
    let items = vec![
        new("ada@example.com"),
        new("ADA@example.com"), // the same email as item 0, once normalised
        new("not an email"),
        new("taken@example.com"),
        NewUser {
            license_type: 0,
            ..new("bob@example.com")
        },
        new("eve@example.com"),
    ];
    let dry = create_batch(&app, &account.account_id, items.clone(), true, false).await;
    assert!(
        app.all_users(&account.account_id).await.len() == 1,
        "a dry run creates nobody"
    );
    let results = create_batch(&app, &account.account_id, items.clone(), false, false).await;
    assert_eq!(comparable(dry), comparable(results.clone()));
    assert_eq!(
        results
            .iter()
            .map(|r| code_of(&r.status))
            .collect::<Vec<_>>(),
        [
            Code::Ok,
            Code::AlreadyExists,
            Code::InvalidArgument,
            Code::AlreadyExists,
            Code::InvalidArgument,
            Code::Ok
        ]
    );
    for (item, result) in items.iter().zip(&results).skip(1).take(4) {
        let single = app
            .try_create_user(telephony_admin::proto::CreateUserRequest {
                account_id: account.account_id.clone(),
                email: item.email.clone(),
                display_name: item.display_name.clone(),
                license_type: item.license_type,
                ..Default::default()
            })
            .await
            .expect_err("fails alone too");
        assert_eq!(result.status, Some(rpc_status(&single)), "{item:?}");
    }
    let user = results[5].user.as_ref().expect("created");
    assert_eq!(user.email, "eve@example.com");
    assert_eq!(user.license_type, LicenseType::Pro as i32);
    assert_eq!(app.all_users(&account.account_id).await.len(), 3);
}

async fn an_atomic_creation_with_a_bad_item_creates_nobody(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("All or none").await;
    let items = vec![new("a@example.com"), new("b@example.com"), new("bad")];
    let results = create_batch(&app, &account.account_id, items, false, true).await;
    assert_eq!(
        results
            .iter()
            .map(|r| code_of(&r.status))
            .collect::<Vec<_>>(),
        [Code::Aborted, Code::Aborted, Code::InvalidArgument]
    );
    assert!(
        results[0]
            .status
            .as_ref()
            .unwrap()
            .message
            .contains("item 2"),
        "{results:?}"
    );
    assert!(app.all_users(&account.account_id).await.is_empty());
}

async fn updated_users_answer_per_item_as_update_user_does(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Changes").await;
    let users = bulk_users(&app, &account.account_id, "change", 3).await;
    let change = |user_id: &str, name: &str, paths: &[&str]| UserChange {
        emergency_location_id: String::new(),
        user_id: user_id.into(),
        display_name: name.into(),
        license_type: LicenseType::Plus as i32,
        update_mask: Some(mask(paths)),
    };
    let items = vec![
        change(&users[0].user_id, "Renamed", &["display_name"]),
        change(&users[1].user_id, "", &["display_name"]),
        change(UNKNOWN_ID, "Nobody", &[]),
        change(&users[2].user_id, "Both", &[]),
    ];
    let results = app
        .users()
        .batch_update_users(BatchUpdateUsersRequest {
            account_id: account.account_id.clone(),
            items: items.clone(),
            ..Default::default()
        })
        .await
        .expect("answered")
        .into_inner()
        .results;
    assert_eq!(
        results
            .iter()
            .map(|r| code_of(&r.status))
            .collect::<Vec<_>>(),
        [Code::Ok, Code::InvalidArgument, Code::NotFound, Code::Ok]
    );
    for (item, result) in items.iter().zip(&results).skip(1).take(2) {
        let single = app
            .users()
            .update_user(UpdateUserRequest {
                emergency_location_id: String::new(),
                account_id: account.account_id.clone(),
                user_id: item.user_id.clone(),
                display_name: item.display_name.clone(),
                license_type: item.license_type,
                update_mask: item.update_mask.clone(),
            })
            .await
            .expect_err("fails alone too");
        assert_eq!(result.status, Some(rpc_status(&single)));
    }
    let renamed = app.get_user(&account.account_id, &users[0].user_id).await;
    assert_eq!(renamed.display_name, "Renamed");
    assert_eq!(renamed.license_type, LicenseType::Basic as i32);
    let both = app.get_user(&account.account_id, &users[2].user_id).await;
    assert_eq!(
        (both.display_name.as_str(), both.license_type),
        ("Both", LicenseType::Plus as i32)
    );
}

async fn keys_are_checked_per_item_as_the_single_rpcs_check_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let own = app.create_account("Own").await;
    let other = app.create_account("Other").await;
    let scoped = app
        .create_key(Role::Admin, account_scope(&own.account_id))
        .await;
    let viewer = app.create_key(Role::Viewer, Scope::Organisation).await;
    for (key, account_id) in [(&scoped, &other.account_id), (&viewer, &own.account_id)] {
        let results = app
            .users_as(Some(key))
            .batch_create_users(BatchCreateUsersRequest {
                account_id: account_id.clone(),
                items: vec![new("x@example.com"), new("y@example.com")],
                ..Default::default()
            })
            .await
            .expect("answered")
            .into_inner()
            .results;
        let single = app
            .users_as(Some(key))
            .create_user(new_user(account_id, "x@example.com"))
            .await
            .expect_err("refused alone");
        assert_eq!(single.code(), Code::PermissionDenied);
        for result in &results {
            assert_eq!(result.status, Some(rpc_status(&single)));
        }
    }
    assert!(app.all_users(&other.account_id).await.is_empty());
    assert!(app.all_users(&own.account_id).await.is_empty());
    // Its own account: allowed.
    let results = app
        .users_as(Some(&scoped))
        .batch_create_users(BatchCreateUsersRequest {
            account_id: own.account_id.clone(),
            items: vec![new("x@example.com")],
            ..Default::default()
        })
        .await
        .expect("answered")
        .into_inner()
        .results;
    assert_eq!(code_of(&results[0].status), Code::Ok);
}

/// A user with what differs between twin users of two accounts (ids, times) cleared.
fn twin_of(user: User) -> User {
    User {
        user_id: String::new(),
        account_id: String::new(),
        ..timeless(user)
    }
}

/// Every user of the account, twin-comparable, in e-mail order.
async fn twins(app: &TestApp, account_id: &str) -> Vec<User> {
    let mut users: Vec<User> = app.all_users(account_id).await;
    users.sort_by(|a, b| a.email.cmp(&b.email));
    users.into_iter().map(twin_of).collect()
}

/// A few hundred changes as one batch, with a user named twice, an unknown one and a refused
/// item, answer item for item as the same changes made one UpdateUser at a time on a twin
/// account, and leave the same users.
async fn a_large_update_answers_as_single_updates_do(backend: Backend) {
    const COUNT: usize = 300;
    let app = spawn_app(backend).await;
    let batch_account = app.create_account("Batch").await;
    let single_account = app.create_account("Single").await;
    let batch_users = bulk_users(&app, &batch_account.account_id, "big", COUNT).await;
    let single_users = bulk_users(&app, &single_account.account_id, "big", COUNT).await;
    let licenses = [LicenseType::Basic, LicenseType::Plus, LicenseType::Pro];
    let paths: [&[&str]; 3] = [&["display_name"], &["license_type"], &[]];
    // (index of the user, or None for an unknown one; the change)
    let mut changes: Vec<(Option<usize>, UserChange)> = (0..COUNT)
        .map(|i| {
            let change = UserChange {
                emergency_location_id: String::new(),
                user_id: String::new(),
                display_name: format!("Name {i}"),
                license_type: licenses[i % 3] as i32,
                update_mask: Some(mask(paths[(i / 3) % 3])),
            };
            (Some(i), change)
        })
        .collect();
    let change = |name: &str, license: LicenseType, paths: &[&str]| UserChange {
        emergency_location_id: String::new(),
        user_id: String::new(),
        display_name: name.into(),
        license_type: license as i32,
        update_mask: Some(mask(paths)),
    };
    changes.insert(150, (None, change("Nobody", LicenseType::Pro, &[])));
    changes.insert(200, (Some(200), change("  ", LicenseType::Pro, &[])));
    changes.push((
        Some(7),
        change("Again", LicenseType::Pro, &["license_type"]),
    ));
    changes.push((
        Some(8),
        change("Twice", LicenseType::Pro, &["display_name"]),
    ));
    let items_for = |users: &[User]| -> Vec<UserChange> {
        changes
            .iter()
            .map(|(user, change)| UserChange {
                user_id: user.map_or(UNKNOWN_ID.into(), |i| users[i].user_id.clone()),
                ..change.clone()
            })
            .collect()
    };
    let request = BatchUpdateUsersRequest {
        account_id: batch_account.account_id.clone(),
        items: items_for(&batch_users),
        ..Default::default()
    };

    let before = twins(&app, &batch_account.account_id).await;
    let dry = app
        .users()
        .batch_update_users(BatchUpdateUsersRequest {
            validate_only: true,
            ..request.clone()
        })
        .await
        .expect("answered")
        .into_inner()
        .results;
    assert_eq!(twins(&app, &batch_account.account_id).await, before);
    let results = app
        .users()
        .batch_update_users(request.clone())
        .await
        .expect("answered")
        .into_inner()
        .results;
    assert_eq!(comparable(dry), comparable(results.clone()));

    let mut refused = 0;
    for (index, (result, item)) in results.iter().zip(items_for(&single_users)).enumerate() {
        let single = app
            .users()
            .update_user(UpdateUserRequest {
                emergency_location_id: String::new(),
                account_id: single_account.account_id.clone(),
                user_id: item.user_id.clone(),
                display_name: item.display_name.clone(),
                license_type: item.license_type,
                update_mask: item.update_mask.clone(),
            })
            .await;
        match single {
            Ok(user) => {
                assert_eq!(code_of(&result.status), Code::Ok, "item {index}");
                let user = user.into_inner();
                assert_eq!(result.user.clone().map(twin_of), Some(twin_of(user)));
            }
            Err(status) => {
                refused += 1;
                assert_eq!(code_of(&result.status), status.code(), "item {index}");
                // The same item alone on the batch's own account: the same status, word for word.
                let own = &request.items[index];
                let alone = app
                    .users()
                    .update_user(UpdateUserRequest {
                        emergency_location_id: String::new(),
                        account_id: batch_account.account_id.clone(),
                        user_id: own.user_id.clone(),
                        display_name: own.display_name.clone(),
                        license_type: own.license_type,
                        update_mask: own.update_mask.clone(),
                    })
                    .await
                    .expect_err("fails alone too");
                assert_eq!(result.status, Some(rpc_status(&alone)), "item {index}");
            }
        }
    }
    assert_eq!(refused, 2);
    assert_eq!(
        (code_of(&results[150].status), code_of(&results[200].status)),
        (Code::NotFound, Code::InvalidArgument)
    );
    assert_eq!(
        twins(&app, &batch_account.account_id).await,
        twins(&app, &single_account.account_id).await
    );
    let twice = app
        .get_user(&batch_account.account_id, &batch_users[7].user_id)
        .await;
    assert_eq!(
        (twice.display_name.as_str(), twice.license_type),
        ("Name 7", LicenseType::Pro as i32)
    );
}

on_both_databases!(
    created_users_answer_per_item_as_create_user_does,
    an_atomic_creation_with_a_bad_item_creates_nobody,
    updated_users_answer_per_item_as_update_user_does,
    keys_are_checked_per_item_as_the_single_rpcs_check_them,
    a_large_update_answers_as_single_updates_do,
);
