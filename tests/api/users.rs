//! UserService end to end: creating, reading, listing, updating and deleting users, asking a
//! user to sign out, and the errors each refusal carries.

use crate::common::fixtures::{UNKNOWN_ID, mask, new_user};
use crate::common::{Backend, TestApp, spawn_app};
use telephony_admin::proto::{
    ChangeKind, CreateUserRequest, DeleteUserRequest, LicenseType, ListUsersRequest,
    ListUsersResponse, LogoutUserRequest, OrderedPhoneNumberStatus, PhoneNumberStatus,
    UpdateUserRequest, User,
};
use tonic::{Code, Status};
use tonic_types::StatusExt;

async fn list_users(app: &TestApp, request: ListUsersRequest) -> Result<ListUsersResponse, Status> {
    app.users()
        .list_users(request)
        .await
        .map(|r| r.into_inner())
}

/// Every user of the account, following page tokens; also returns the page sizes.
async fn list_all_users(
    app: &TestApp,
    account_id: &str,
    page_size: i32,
    email: &str,
) -> (Vec<User>, Vec<usize>) {
    let mut users = Vec::new();
    let mut sizes = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = list_users(
            app,
            ListUsersRequest {
                account_id: account_id.into(),
                page_size,
                page_token: page_token.clone(),
                email: email.into(),
                ..Default::default()
            },
        )
        .await
        .expect("list users");
        sizes.push(page.users.len());
        users.extend(page.users);
        if page.next_page_token.is_empty() {
            return (users, sizes);
        }
        assert!(sizes.len() < 100, "pagination does not terminate");
        page_token = page.next_page_token;
    }
}

async fn update_user(app: &TestApp, request: UpdateUserRequest) -> Result<User, Status> {
    app.users()
        .update_user(request)
        .await
        .map(|r| r.into_inner())
}

/// INVALID_ARGUMENT whose `google.rpc.BadRequest` holds exactly one violation per listed field,
/// each mentioning its fragment.
#[track_caller]
fn assert_field_violations(status: &Status, expected: &[(&str, &str)]) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let bad_request = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest details in {status:?}"));
    let violations = &bad_request.field_violations;
    assert_eq!(
        violations.len(),
        expected.len(),
        "unexpected violations {violations:?}"
    );
    for (field, fragment) in expected {
        assert!(
            violations
                .iter()
                .any(|v| v.field == *field && v.description.contains(fragment)),
            "no violation of {field} mentioning {fragment:?} in {violations:?}"
        );
    }
}

async fn create_user_normalises_and_validates(backend: Backend) {
    let app = spawn_app(backend).await;
    let account_id = app.create_account("Acme").await.account_id;

    let user = app
        .try_create_user(CreateUserRequest {
            account_id: account_id.clone(),
            email: "  Ann.Smith@Example.COM ".into(),
            display_name: "  Ann Smith ".into(),
            license_type: LicenseType::ProTrial as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(user.account_id, account_id);
    assert!(uuid::Uuid::try_parse(&user.user_id).is_ok());
    assert_eq!(user.email, "ann.smith@example.com");
    assert_eq!(user.display_name, "Ann Smith");
    assert_eq!(user.license_type, LicenseType::ProTrial as i32);
    assert_eq!(user.primary_phone_number, "");
    let settings = user.telephony_settings.expect("settings");
    assert!(!settings.inbound_calling && !settings.outbound_calling && !settings.sms);
    assert_eq!(app.get_user(&account_id, &user.user_id).await, user);

    let cases: Vec<(CreateUserRequest, &str, &str)> = vec![
        (
            new_user(&account_id, "not-an-email"),
            "email",
            "not a valid email",
        ),
        (
            new_user(&account_id, "Ann <ann@example.com>"),
            "email",
            "not a valid email",
        ),
        (new_user(&account_id, ""), "email", "is required"),
        (
            CreateUserRequest {
                display_name: "   ".into(),
                ..new_user(&account_id, "bob@example.com")
            },
            "display_name",
            "must not be empty",
        ),
        (
            CreateUserRequest {
                display_name: "x".repeat(101),
                ..new_user(&account_id, "bob@example.com")
            },
            "display_name",
            "at most 100 characters",
        ),
        (
            CreateUserRequest {
                license_type: LicenseType::Unspecified as i32,
                ..new_user(&account_id, "bob@example.com")
            },
            "license_type",
            "is required",
        ),
        (
            CreateUserRequest {
                license_type: 99,
                ..new_user(&account_id, "bob@example.com")
            },
            "license_type",
            "99 is not a known value",
        ),
        (
            new_user("not-a-uuid", "bob@example.com"),
            "account_id",
            "must be a UUID",
        ),
    ];
    for (request, field, fragment) in cases {
        let status = app
            .try_create_user(request)
            .await
            .expect_err("an invalid user is refused");
        assert_field_violations(&status, &[(field, fragment)]);
    }

    // Every bad field is reported in one error.
    let status = app
        .try_create_user(CreateUserRequest {
            account_id: account_id.clone(),
            email: "nope".into(),
            display_name: String::new(),
            license_type: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_field_violations(
        &status,
        &[
            ("email", "not a valid email"),
            ("display_name", "must not be empty"),
            ("license_type", "is required"),
        ],
    );

    let status = app
        .try_create_user(new_user(UNKNOWN_ID, "bob@example.com"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains(UNKNOWN_ID), "{status:?}");

    // The refused requests created nothing.
    let (users, _) = list_all_users(&app, &account_id, 0, "").await;
    assert_eq!(users, vec![user]);
}

async fn create_user_refuses_an_email_taken_in_the_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let acme = app.create_account("Acme").await.account_id;
    let globex = app.create_account("Globex").await.account_id;
    let first = app.create_user(&acme, "ann@example.com").await;

    for email in ["ann@example.com", "ANN@Example.com"] {
        let status = app
            .try_create_user(new_user(&acme, email))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{email}: {status:?}");
        assert!(
            status.message().contains("ann@example.com"),
            "{email}: {status:?}"
        );
    }
    let (users, _) = list_all_users(&app, &acme, 0, "").await;
    assert_eq!(users, vec![first.clone()]);

    // Another account may have a user with the same email.
    let twin = app.create_user(&globex, "Ann@Example.com").await;
    assert_eq!(twin.email, "ann@example.com");
    assert_ne!(twin.user_id, first.user_id);
    assert_eq!(app.get_user(&acme, &first.user_id).await, first);
}

async fn get_user_only_through_its_own_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let acme = app.create_account("Acme").await.account_id;
    let globex = app.create_account("Globex").await.account_id;
    let user = app.create_user(&acme, "ann@example.com").await;

    assert_eq!(app.get_user(&acme, &user.user_id).await, user);

    let status = app.try_get_user(&globex, &user.user_id).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = app
        .try_get_user(UNKNOWN_ID, &user.user_id)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = app.try_get_user(&acme, UNKNOWN_ID).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains(UNKNOWN_ID), "{status:?}");

    let status = app.try_get_user(&acme, "user-1").await.unwrap_err();
    assert_field_violations(&status, &[("user_id", "must be a UUID")]);

    // Changing or deleting through the wrong account touches nothing either.
    let status = update_user(
        &app,
        UpdateUserRequest {
            emergency_location_id: String::new(),
            account_id: globex.clone(),
            user_id: user.user_id.clone(),
            display_name: "Hijacked".into(),
            license_type: LicenseType::Pro as i32,
            update_mask: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = app
        .users()
        .delete_user(DeleteUserRequest {
            account_id: globex.clone(),
            user_id: user.user_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(app.get_user(&acme, &user.user_id).await, user);
}

async fn list_users_pages_and_filters_by_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let acme = app.create_account("Acme").await.account_id;
    let globex = app.create_account("Globex").await.account_id;
    let mut created = Vec::new();
    // Emails in reverse order: the listing must follow creation.
    for email in [
        "eve@example.com",
        "dan@example.com",
        "cat@example.com",
        "bob@example.com",
        "ann@example.com",
    ] {
        created.push(app.create_user(&acme, email).await);
    }
    let outsider = app.create_user(&globex, "zed@example.com").await;

    let (listed, sizes) = list_all_users(&app, &acme, 2, "").await;
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(listed, created);

    let (listed, _) = list_all_users(&app, &globex, 2, "").await;
    assert_eq!(listed, vec![outsider]);

    let (listed, _) = list_all_users(&app, &acme, 0, "CAT@Example.com").await;
    assert_eq!(listed, vec![created[2].clone()]);
    let (listed, _) = list_all_users(&app, &acme, 0, "zed@example.com").await;
    assert!(listed.is_empty(), "{listed:?}");

    let status = list_users(
        &app,
        ListUsersRequest {
            account_id: acme.clone(),
            email: "cat".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_field_violations(&status, &[("email", "not a valid email")]);

    // A token belongs to its account and its filter.
    let first = list_users(
        &app,
        ListUsersRequest {
            account_id: acme.clone(),
            page_size: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for (account_id, email) in [(&globex, ""), (&acme, "ann@example.com")] {
        let status = list_users(
            &app,
            ListUsersRequest {
                account_id: account_id.clone(),
                page_size: 2,
                page_token: first.next_page_token.clone(),
                email: email.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_field_violations(&status, &[("page_token", "different filters")]);
    }

    let status = list_users(
        &app,
        ListUsersRequest {
            account_id: UNKNOWN_ID.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains(UNKNOWN_ID), "{status:?}");
}

async fn update_user_follows_the_update_mask(backend: Backend) {
    let app = spawn_app(backend).await;
    let acme = app.create_account("Acme").await.account_id;
    let user = app.create_user(&acme, "ann@example.com").await;
    assert_eq!(user.license_type, LicenseType::Basic as i32);
    let request = |display_name: &str, license_type: LicenseType, update_mask| UpdateUserRequest {
        emergency_location_id: String::new(),
        account_id: acme.clone(),
        user_id: user.user_id.clone(),
        display_name: display_name.into(),
        license_type: license_type as i32,
        update_mask,
    };

    let renamed = update_user(
        &app,
        request(
            " Ann Renamed ",
            LicenseType::Pro,
            Some(mask(&["display_name"])),
        ),
    )
    .await
    .unwrap();
    assert_eq!(renamed.display_name, "Ann Renamed");
    assert_eq!(renamed.license_type, LicenseType::Basic as i32);
    assert_eq!(renamed.email, user.email);
    assert_eq!(renamed.create_time, user.create_time);
    assert_ne!(renamed.update_time, user.update_time);
    assert_eq!(app.get_user(&acme, &user.user_id).await, renamed);

    // A field outside the mask is ignored, even when it would be invalid.
    let relicensed = update_user(
        &app,
        request("", LicenseType::Plus, Some(mask(&["license_type"]))),
    )
    .await
    .unwrap();
    assert_eq!(relicensed.display_name, "Ann Renamed");
    assert_eq!(relicensed.license_type, LicenseType::Plus as i32);
    assert_eq!(app.get_user(&acme, &user.user_id).await, relicensed);

    // An empty or absent mask changes both fields.
    let both = update_user(&app, request("Ann Both", LicenseType::Pro, Some(mask(&[]))))
        .await
        .unwrap();
    assert_eq!(both.display_name, "Ann Both");
    assert_eq!(both.license_type, LicenseType::Pro as i32);
    let both = update_user(&app, request("Ann Again", LicenseType::ProTrial, None))
        .await
        .unwrap();
    assert_eq!(both.display_name, "Ann Again");
    assert_eq!(both.license_type, LicenseType::ProTrial as i32);
    assert_eq!(app.get_user(&acme, &user.user_id).await, both);

    // Refused updates change nothing.
    let status = update_user(
        &app,
        request(
            "Ann Email",
            LicenseType::Basic,
            Some(mask(&["display_name", "email"])),
        ),
    )
    .await
    .unwrap_err();
    assert_field_violations(&status, &[("update_mask", "unknown path \"email\"")]);
    let status = update_user(&app, request("", LicenseType::Unspecified, None))
        .await
        .unwrap_err();
    assert_field_violations(
        &status,
        &[
            ("display_name", "must not be empty"),
            ("license_type", "is required"),
        ],
    );
    let status = update_user(
        &app,
        UpdateUserRequest {
            license_type: 42,
            ..request("Ann", LicenseType::Basic, Some(mask(&["license_type"])))
        },
    )
    .await
    .unwrap_err();
    assert_field_violations(&status, &[("license_type", "42 is not a known value")]);
    let status = update_user(
        &app,
        UpdateUserRequest {
            user_id: UNKNOWN_ID.into(),
            ..request("Ghost", LicenseType::Basic, None)
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(app.get_user(&acme, &user.user_id).await, both);
}

async fn delete_user_returns_the_number_to_the_inventory(backend: Backend) {
    let app = spawn_app(backend).await;
    let acme = app.create_account("Acme").await.account_id;
    let ann = app.create_user(&acme, "ann@example.com").await;
    let bob = app.create_user(&acme, "bob@example.com").await;
    const NUMBER: &str = "+12065550123";

    let order = app.order_business_numbers(&[NUMBER]).await;
    assert_eq!(
        order.ordered_phone_numbers[0].status,
        OrderedPhoneNumberStatus::Acquired as i32,
        "{order:?}"
    );
    let assigned = app.assign(&acme, &ann.user_id, NUMBER).await.unwrap();
    assert_eq!(assigned.primary_phone_number, NUMBER);
    let number = app.get_number(NUMBER).await;
    assert_eq!(number.status, PhoneNumberStatus::Assigned as i32);
    assert_eq!(
        number.association.as_ref().map(|a| a.user_id.as_str()),
        Some(ann.user_id.as_str())
    );

    app.users()
        .delete_user(DeleteUserRequest {
            account_id: acme.clone(),
            user_id: ann.user_id.clone(),
        })
        .await
        .unwrap();

    let number = app.get_number(NUMBER).await;
    assert_eq!(number.status, PhoneNumberStatus::Unassigned as i32);
    assert_eq!(number.association, None);
    let status = app.try_get_user(&acme, &ann.user_id).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let (users, _) = list_all_users(&app, &acme, 0, "").await;
    assert_eq!(users, vec![bob.clone()]);

    // The user is told, with the number they lost.
    let events = app.all_changes(&acme, &ann.user_id).await;
    let deleted = events.last().expect("events of the deleted user");
    assert_eq!(deleted.kind, ChangeKind::UserDeleted as i32);
    assert_eq!(deleted.e164_phone_number, NUMBER);

    // The number really is free again: another user can take it.
    let bob = app.assign(&acme, &bob.user_id, NUMBER).await.unwrap();
    assert_eq!(bob.primary_phone_number, NUMBER);

    let status = app
        .users()
        .delete_user(DeleteUserRequest {
            account_id: acme.clone(),
            user_id: ann.user_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // The email is free again too.
    let ann_again = app.create_user(&acme, "ann@example.com").await;
    assert_ne!(ann_again.user_id, ann.user_id);
}

async fn logout_user_records_a_sign_out_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let acme = app.create_account("Acme").await.account_id;
    let globex = app.create_account("Globex").await.account_id;
    let ann = app.create_user(&acme, "ann@example.com").await;
    let bob = app.create_user(&acme, "bob@example.com").await;

    let sequence = app
        .users()
        .logout_user(LogoutUserRequest {
            account_id: acme.clone(),
            user_id: ann.user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .sequence;
    assert!(sequence > 0);

    let events = app.all_changes(&acme, &ann.user_id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.sequence, sequence);
    assert_eq!(event.kind, ChangeKind::UserSignOutRequested as i32);
    assert_eq!(event.account_id, acme);
    assert_eq!(event.user_id, ann.user_id);
    assert!(event.sign_out_required);
    assert!(!event.event_id.is_empty());
    assert!(!event.actor.is_empty());
    assert!(event.occur_time.is_some());
    assert!(app.all_changes(&acme, &bob.user_id).await.is_empty());

    // A second request is a new event with a larger sequence.
    let again = app
        .users()
        .logout_user(LogoutUserRequest {
            account_id: acme.clone(),
            user_id: ann.user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .sequence;
    assert!(again > sequence, "{again} after {sequence}");

    for (account_id, user_id) in [
        (acme.as_str(), UNKNOWN_ID),
        (globex.as_str(), ann.user_id.as_str()),
    ] {
        let status = app
            .users()
            .logout_user(LogoutUserRequest {
                account_id: account_id.into(),
                user_id: user_id.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }

    // The refused requests recorded nothing.
    let all = app.all_changes("", "").await;
    let sequences: Vec<u64> = all.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, vec![sequence, again]);
}

/// `search`: email or display name containing the text, in any case; `%` and `_` are plain
/// characters; pages keep to the search they began with.
async fn list_users_searches_emails_and_names(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Search").await.account_id;
    let other = app.create_account("Elsewhere").await.account_id;
    for (email, name) in [
        ("ann@example.com", "Ann Smith"),
        ("bob@acme.org", "Bob Stone"),
        ("a_b@example.com", "Underscore"),
        ("axb@example.com", "Percent 100%"),
    ] {
        app.try_create_user(CreateUserRequest {
            display_name: name.into(),
            ..new_user(&account, email)
        })
        .await
        .expect("created");
    }
    app.create_user(&other, "smith@example.com").await;
    let search = |text: &str| {
        let app = &app;
        let request = ListUsersRequest {
            account_id: account.clone(),
            search: text.into(),
            ..Default::default()
        };
        async move {
            let mut emails: Vec<String> = list_users(app, request)
                .await
                .expect("listed")
                .users
                .into_iter()
                .map(|u| u.email)
                .collect();
            emails.sort();
            emails
        }
    };
    assert_eq!(
        search("SMITH").await,
        ["ann@example.com"],
        "names, any case, one account"
    );
    assert_eq!(search("acme").await, ["bob@acme.org"]);
    assert_eq!(search("a_b").await, ["a_b@example.com"], "_ is no wildcard");
    assert_eq!(
        search("100%").await,
        ["axb@example.com"],
        "% is no wildcard"
    );
    assert_eq!(search("example.com").await.len(), 3);
    assert!(search("nobody").await.is_empty());

    // Pages of one keep to their search; a token with another search is refused.
    let first = list_users(
        &app,
        ListUsersRequest {
            account_id: account.clone(),
            search: "example".into(),
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(first.users.len(), 1);
    let refused = list_users(
        &app,
        ListUsersRequest {
            account_id: account.clone(),
            search: "acme".into(),
            page_size: 1,
            page_token: first.next_page_token,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let too_long = list_users(
        &app,
        ListUsersRequest {
            account_id: account,
            search: "x".repeat(101),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(too_long.code(), Code::InvalidArgument);
}

on_both_databases!(
    list_users_searches_emails_and_names,
    create_user_normalises_and_validates,
    create_user_refuses_an_email_taken_in_the_account,
    get_user_only_through_its_own_account,
    list_users_pages_and_filters_by_email,
    update_user_follows_the_update_mask,
    delete_user_returns_the_number_to_the_inventory,
    logout_user_records_a_sign_out_event,
);
