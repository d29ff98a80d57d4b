//! AccountService end to end: creating, reading, listing, renaming and deleting accounts, the
//! errors each refusal carries, and that the data survives a server restart.

use crate::common::fixtures::UNKNOWN_ID;
use crate::common::{Backend, TestApp, spawn_app, spawn_app_on};
use prost_types::Timestamp;
use telephony_admin::proto::{
    Account, ChangeKind, CreateAccountRequest, DeleteAccountRequest, DeleteUserRequest,
    GetAccountRequest, ListAccountsRequest, ListAccountsResponse, ListChangesRequest,
    ListUsersRequest, LogoutUserRequest, PhoneNumberStatus, UpdateAccountRequest,
};
use tonic::{Code, Status};
use tonic_types::StatusExt;

async fn get_account(app: &TestApp, account_id: &str) -> Result<Account, Status> {
    app.accounts()
        .get_account(GetAccountRequest {
            account_id: account_id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn list_accounts(
    app: &TestApp,
    request: ListAccountsRequest,
) -> Result<ListAccountsResponse, Status> {
    app.accounts()
        .list_accounts(request)
        .await
        .map(|r| r.into_inner())
}

/// Every account, following page tokens with pages of `page_size`; also returns the page sizes.
async fn list_all_accounts(
    app: &TestApp,
    page_size: i32,
    name_prefix: &str,
) -> (Vec<Account>, Vec<usize>) {
    let mut accounts = Vec::new();
    let mut sizes = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = list_accounts(
            app,
            ListAccountsRequest {
                page_size,
                page_token: page_token.clone(),
                name_prefix: name_prefix.into(),
            },
        )
        .await
        .expect("list accounts");
        sizes.push(page.accounts.len());
        accounts.extend(page.accounts);
        if page.next_page_token.is_empty() {
            return (accounts, sizes);
        }
        assert!(sizes.len() < 100, "pagination does not terminate");
        page_token = page.next_page_token;
    }
}

fn names(accounts: &[Account]) -> Vec<&str> {
    accounts.iter().map(|a| a.name.as_str()).collect()
}

fn ids(accounts: &[Account]) -> Vec<&str> {
    accounts.iter().map(|a| a.account_id.as_str()).collect()
}

fn time(t: &Option<Timestamp>) -> (i64, i32) {
    let t = t.as_ref().expect("timestamp is set");
    (t.seconds, t.nanos)
}

/// INVALID_ARGUMENT with a `google.rpc.BadRequest` violation of `field` mentioning `fragment`.
#[track_caller]
fn assert_field_violation(status: &Status, field: &str, fragment: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let bad_request = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest details in {status:?}"));
    assert!(
        bad_request
            .field_violations
            .iter()
            .any(|v| v.field == field && v.description.contains(fragment)),
        "no violation of {field} mentioning {fragment:?} in {:?}",
        bad_request.field_violations
    );
}

async fn create_account_trims_and_validates_the_name(backend: Backend) {
    let app = spawn_app(backend).await;

    let account = app.create_account("  Acme Corp \t").await;
    assert_eq!(account.name, "Acme Corp");
    assert!(uuid::Uuid::try_parse(&account.account_id).is_ok());
    assert_eq!(time(&account.create_time), time(&account.update_time));
    assert_eq!(
        get_account(&app, &account.account_id).await.unwrap(),
        account
    );

    // The limit counts characters, not bytes.
    let longest = "é".repeat(100);
    assert_eq!(app.create_account(&longest).await.name, longest);

    for (name, fragment) in [
        ("", "must not be empty"),
        ("   \t ", "must not be empty"),
        (&*"x".repeat(101), "at most 100 characters"),
        ("Acme\u{7}Bell", "control characters"),
    ] {
        let status = app
            .accounts()
            .create_account(CreateAccountRequest { name: name.into() })
            .await
            .expect_err("an invalid name is refused");
        assert_field_violation(&status, "name", fragment);
    }

    // The refused requests created nothing.
    let (all, _) = list_all_accounts(&app, 0, "").await;
    assert_eq!(names(&all), vec!["Acme Corp", longest.as_str()]);
}

async fn get_account_distinguishes_bad_ids_from_unknown_ones(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Globex").await;

    let status = get_account(&app, "not-a-uuid").await.unwrap_err();
    assert_field_violation(&status, "account_id", "must be a UUID");
    let status = get_account(&app, "").await.unwrap_err();
    assert_field_violation(&status, "account_id", "is required");

    let status = get_account(&app, UNKNOWN_ID).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains(UNKNOWN_ID), "{status:?}");
    let resource = status.get_details_resource_info().expect("ResourceInfo");
    assert_eq!(resource.resource_type, "account");
    assert_eq!(resource.resource_name, UNKNOWN_ID);

    // Ids are UUIDs however they are spelt.
    let upper = account.account_id.to_uppercase();
    assert_eq!(get_account(&app, &upper).await.unwrap(), account);
}

async fn list_accounts_pages_through_every_account_in_creation_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut created = Vec::new();
    // Names in reverse alphabetical order: the listing must follow creation, not names.
    for name in ["Echo", "Delta", "Charlie", "Bravo", "Alpha"] {
        created.push(app.create_account(name).await);
    }

    let (listed, sizes) = list_all_accounts(&app, 2, "").await;
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(ids(&listed), ids(&created));
    assert_eq!(listed, created);

    // A page that ends exactly at the last account says there is no more.
    let (listed, sizes) = list_all_accounts(&app, 5, "").await;
    assert_eq!(sizes, vec![5]);
    assert_eq!(listed, created);

    // 1000, the largest size accepted, is fine too.
    let (listed, sizes) = list_all_accounts(&app, 1000, "").await;
    assert_eq!(sizes, vec![5]);
    assert_eq!(listed, created);
}

async fn list_accounts_defaults_to_pages_of_fifty(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut created = Vec::new();
    for i in 0..51 {
        created.push(app.create_account(&format!("Account {i:02}")).await);
    }

    let first = list_accounts(&app, ListAccountsRequest::default())
        .await
        .unwrap();
    assert_eq!(first.accounts.len(), 50);
    assert_eq!(first.accounts, created[..50]);
    assert!(!first.next_page_token.is_empty());

    let second = list_accounts(
        &app,
        ListAccountsRequest {
            page_token: first.next_page_token,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(second.accounts, created[50..]);
    assert!(second.next_page_token.is_empty());
}

async fn list_accounts_filters_by_literal_name_prefix(backend: Backend) {
    let app = spawn_app(backend).await;
    for name in [
        "100% Agency",
        "100 Percent",
        "a_b Trading",
        "aXb Trading",
        "Acme",
        "ACME Logistics",
        "C:\\Drive Ltd",
        "C:Drive Ltd",
        "École Normale",
    ] {
        app.create_account(name).await;
    }

    let cases: [(&str, &[&str]); 9] = [
        // LIKE wildcards in the prefix match themselves only.
        ("100%", &["100% Agency"]),
        ("100", &["100% Agency", "100 Percent"]),
        ("a_b", &["a_b Trading"]),
        ("C:\\", &["C:\\Drive Ltd"]),
        // ASCII letters match regardless of case.
        ("acme", &["Acme", "ACME Logistics"]),
        ("ACME L", &["ACME Logistics"]),
        (
            "a",
            &["a_b Trading", "aXb Trading", "Acme", "ACME Logistics"],
        ),
        ("École", &["École Normale"]),
        ("Zulu", &[]),
    ];
    for (prefix, expected) in cases {
        let (listed, _) = list_all_accounts(&app, 0, prefix).await;
        assert_eq!(names(&listed), expected, "name_prefix {prefix:?}");
    }

    // The filter holds across pages.
    let (listed, sizes) = list_all_accounts(&app, 1, "a").await;
    assert_eq!(
        names(&listed),
        ["a_b Trading", "aXb Trading", "Acme", "ACME Logistics"]
    );
    assert_eq!(sizes, vec![1, 1, 1, 1]);
}

async fn list_accounts_refuses_bad_page_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    for name in ["Alpha", "Alfa", "Bravo"] {
        app.create_account(name).await;
    }

    for (page_size, fragment) in [(1001, "at most 1000"), (-1, "must not be negative")] {
        let status = list_accounts(
            &app,
            ListAccountsRequest {
                page_size,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_field_violation(&status, "page_size", fragment);
    }

    for garbage in ["garbage", "!!!", "eyJ2IjoxfQ", &"A".repeat(2000)] {
        let status = list_accounts(
            &app,
            ListAccountsRequest {
                page_token: garbage.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_field_violation(&status, "page_token", "not a page token");
    }

    let first = list_accounts(
        &app,
        ListAccountsRequest {
            page_size: 1,
            name_prefix: "a".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!first.next_page_token.is_empty());
    for other_prefix in ["", "al", "b"] {
        let status = list_accounts(
            &app,
            ListAccountsRequest {
                page_size: 1,
                page_token: first.next_page_token.clone(),
                name_prefix: other_prefix.into(),
            },
        )
        .await
        .unwrap_err();
        assert_field_violation(&status, "page_token", "different filters");
    }

    let status = list_accounts(
        &app,
        ListAccountsRequest {
            name_prefix: "x".repeat(101),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_field_violation(&status, "name_prefix", "at most 100 characters");
}

async fn update_account_renames_and_moves_update_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Initech").await;

    let renamed = app
        .accounts()
        .update_account(UpdateAccountRequest {
            account_id: account.account_id.clone(),
            name: "  Initrode ".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.account_id, account.account_id);
    assert_eq!(renamed.name, "Initrode");
    assert_eq!(time(&renamed.create_time), time(&account.create_time));
    assert!(
        time(&renamed.update_time) > time(&account.update_time),
        "update_time did not move: {:?} then {:?}",
        account.update_time,
        renamed.update_time
    );
    assert_eq!(
        get_account(&app, &account.account_id).await.unwrap(),
        renamed
    );

    // A refused rename changes nothing.
    let status = app
        .accounts()
        .update_account(UpdateAccountRequest {
            account_id: account.account_id.clone(),
            name: " ".into(),
        })
        .await
        .unwrap_err();
    assert_field_violation(&status, "name", "must not be empty");
    assert_eq!(
        get_account(&app, &account.account_id).await.unwrap(),
        renamed
    );

    let status = app
        .accounts()
        .update_account(UpdateAccountRequest {
            account_id: UNKNOWN_ID.into(),
            name: "Ghost".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains(UNKNOWN_ID), "{status:?}");

    let status = app
        .accounts()
        .update_account(UpdateAccountRequest {
            account_id: "123".into(),
            name: "Ghost".into(),
        })
        .await
        .unwrap_err();
    assert_field_violation(&status, "account_id", "must be a UUID");

    let (all, _) = list_all_accounts(&app, 0, "").await;
    assert_eq!(all, vec![renamed]);
}

async fn delete_account_is_refused_while_it_has_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Umbrella").await;
    let other = app.create_account("Stark").await;
    let user = app
        .create_user(&account.account_id, "alice@umbrella.example")
        .await;

    let status = app
        .accounts()
        .delete_account(DeleteAccountRequest {
            account_id: account.account_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("delete them first"), "{status:?}");
    let failure = status
        .get_details_precondition_failure()
        .expect("PreconditionFailure details");
    assert_eq!(failure.violations.len(), 1);
    assert_eq!(failure.violations[0].r#type, "ACCOUNT_HAS_USERS");
    assert_eq!(failure.violations[0].subject, account.account_id);

    // Nothing was deleted: the account and its user are still there.
    assert_eq!(
        get_account(&app, &account.account_id).await.unwrap(),
        account
    );
    let fetched = app.get_user(&account.account_id, &user.user_id).await;
    assert_eq!(fetched, user);

    app.users()
        .delete_user(DeleteUserRequest {
            account_id: account.account_id.clone(),
            user_id: user.user_id.clone(),
        })
        .await
        .unwrap();
    app.accounts()
        .delete_account(DeleteAccountRequest {
            account_id: account.account_id.clone(),
        })
        .await
        .unwrap();

    let status = get_account(&app, &account.account_id).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = app
        .accounts()
        .delete_account(DeleteAccountRequest {
            account_id: account.account_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = app
        .users()
        .list_users(ListUsersRequest {
            account_id: account.account_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // Only the deleted account went.
    let (all, _) = list_all_accounts(&app, 0, "").await;
    assert_eq!(all, vec![other]);
}

async fn data_survives_a_restart(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let old_key = app.admin_key.clone();

    let kept = app.create_account("Wayne Enterprises").await;
    let renamed = app
        .accounts()
        .update_account(UpdateAccountRequest {
            account_id: kept.account_id.clone(),
            name: "Wayne Industries".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let second = app.create_account("Daily Planet").await;
    let user = app
        .create_user(&renamed.account_id, "Bruce@Wayne.example")
        .await;
    app.order_business_numbers(&["+12065550142"]).await;
    let user = app
        .assign(&user.account_id, &user.user_id, "+12065550142")
        .await
        .unwrap();
    let number_before = app.get_number("+12065550142").await;
    let changes_before = app.all_changes("", "").await;
    assert_eq!(changes_before.len(), 1);

    app.stop().await;
    let db = app.database.take().unwrap();
    let app2 = spawn_app_on(db, |s| s.bootstrap_key = Some(old_key.clone())).await;

    let (accounts, _) = list_all_accounts(&app2, 0, "").await;
    assert_eq!(accounts, vec![renamed.clone(), second]);
    assert_eq!(
        get_account(&app2, &renamed.account_id).await.unwrap(),
        renamed
    );
    let fetched = app2.get_user(&user.account_id, &user.user_id).await;
    assert_eq!(fetched, user);
    assert_eq!(fetched.email, "bruce@wayne.example");
    assert_eq!(fetched.primary_phone_number, "+12065550142");
    let number_after = app2.get_number("+12065550142").await;
    assert_eq!(number_after, number_before);
    assert_eq!(number_after.status, PhoneNumberStatus::Assigned as i32);
    let changes_after = app2.all_changes("", "").await;
    assert_eq!(changes_after, changes_before);

    // The change sequence carries on after the restart instead of starting over.
    let sequence = app2
        .users()
        .logout_user(LogoutUserRequest {
            account_id: user.account_id.clone(),
            user_id: user.user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .sequence;
    assert_eq!(sequence, changes_before[0].sequence + 1);
    let latest = app2
        .changes()
        .list_changes(ListChangesRequest {
            after_sequence: changes_before[0].sequence,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].kind, ChangeKind::UserSignOutRequested as i32);
}

on_both_databases!(
    create_account_trims_and_validates_the_name,
    get_account_distinguishes_bad_ids_from_unknown_ones,
    list_accounts_pages_through_every_account_in_creation_order,
    list_accounts_defaults_to_pages_of_fifty,
    list_accounts_filters_by_literal_name_prefix,
    list_accounts_refuses_bad_page_requests,
    update_account_renames_and_moves_update_time,
    delete_account_is_refused_while_it_has_users,
    data_survives_a_restart,
);
