//! Hostile fields in every UserService request.

use super::{
    BAD_ENUMS, Case, Fixture, bad_ids, bad_masks, bad_page_tokens, case, huge, run_cases, show,
};
use crate::common::fixtures::mask;
use crate::common::{Backend, TestApp};
use telephony_admin::proto::{
    CreateUserRequest, DeleteUserRequest, GetUserRequest, LicenseType, ListUsersRequest,
    LogoutUserRequest, UpdateUserRequest,
};

fn user_cases<'a>(app: &'a TestApp, f: &'a Fixture) -> Vec<Case<'a>> {
    let mut cases = Vec::new();
    let create = move |account_id: String, email: String, display_name: String, license: i32| async move {
        app.users()
            .create_user(CreateUserRequest {
                account_id,
                email,
                display_name,
                license_type: license,
                ..Default::default()
            })
            .await
            .map(drop)
    };
    let good_license = LicenseType::Basic as i32;
    for email in [
        String::new(),
        huge(),
        "not an email".into(),
        "ann@example".into(),
        "Ann <ann@example.com>".into(),
        "ann@exa\0mple.com".into(),
        format!("{}@example.com", "a".repeat(300)),
    ] {
        cases.push(case(
            format!("CreateUser email {}", show(&email)),
            "email",
            create(f.account_id.clone(), email, "Bob".into(), good_license),
        ));
    }
    for display_name in [String::new(), huge(), "a\u{7}b".into()] {
        cases.push(case(
            format!("CreateUser display_name {}", show(&display_name)),
            "display_name",
            create(
                f.account_id.clone(),
                "bob@example.com".into(),
                display_name,
                good_license,
            ),
        ));
    }
    for license in BAD_ENUMS.into_iter().chain([0]) {
        cases.push(case(
            format!("CreateUser license_type {license}"),
            "license_type",
            create(
                f.account_id.clone(),
                "bob@example.com".into(),
                "Bob".into(),
                license,
            ),
        ));
    }
    for id in bad_ids() {
        let label = show(&id);
        cases.push(case(
            format!("CreateUser account_id {label}"),
            "account_id",
            create(
                id.clone(),
                "bob@example.com".into(),
                "Bob".into(),
                good_license,
            ),
        ));
        let ids = [
            (id.clone(), f.user_id.clone(), "account_id"),
            (f.account_id.clone(), id.clone(), "user_id"),
        ];
        for (account_id, user_id, field) in ids {
            let (a1, u1) = (account_id.clone(), user_id.clone());
            cases.push(case(
                format!("GetUser {field} {label}"),
                field,
                async move {
                    app.users()
                        .get_user(GetUserRequest {
                            account_id: a1,
                            user_id: u1,
                        })
                        .await
                        .map(drop)
                },
            ));
            let (a2, u2) = (account_id.clone(), user_id.clone());
            cases.push(case(
                format!("UpdateUser {field} {label}"),
                field,
                async move {
                    app.users()
                        .update_user(UpdateUserRequest {
                            emergency_location_id: String::new(),
                            account_id: a2,
                            user_id: u2,
                            display_name: "Renamed".into(),
                            license_type: LicenseType::Plus as i32,
                            update_mask: None,
                        })
                        .await
                        .map(drop)
                },
            ));
            let (a3, u3) = (account_id.clone(), user_id.clone());
            cases.push(case(
                format!("DeleteUser {field} {label}"),
                field,
                async move {
                    app.users()
                        .delete_user(DeleteUserRequest {
                            account_id: a3,
                            user_id: u3,
                        })
                        .await
                        .map(drop)
                },
            ));
            cases.push(case(
                format!("LogoutUser {field} {label}"),
                field,
                async move {
                    app.users()
                        .logout_user(LogoutUserRequest {
                            account_id,
                            user_id,
                        })
                        .await
                        .map(drop)
                },
            ));
        }
        cases.push(case(
            format!("ListUsers account_id {label}"),
            "account_id",
            async move {
                app.users()
                    .list_users(ListUsersRequest {
                        account_id: id,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            },
        ));
    }
    for page_token in bad_page_tokens() {
        cases.push(case(
            format!("ListUsers page_token {}", show(&page_token)),
            "page_token",
            async move {
                app.users()
                    .list_users(ListUsersRequest {
                        account_id: f.account_id.clone(),
                        page_token,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            },
        ));
    }
    for email in [huge(), "nope".into()] {
        cases.push(case(
            format!("ListUsers email {}", show(&email)),
            "email",
            async move {
                app.users()
                    .list_users(ListUsersRequest {
                        account_id: f.account_id.clone(),
                        email,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            },
        ));
    }
    cases.push(case("ListUsers page_size -1", "page_size", async move {
        app.users()
            .list_users(ListUsersRequest {
                account_id: f.account_id.clone(),
                page_size: -1,
                ..Default::default()
            })
            .await
            .map(drop)
    }));
    for (i, update_mask) in bad_masks().into_iter().enumerate() {
        cases.push(case(
            format!("UpdateUser bad mask #{i}"),
            "update_mask",
            async move {
                app.users()
                    .update_user(UpdateUserRequest {
                        emergency_location_id: String::new(),
                        account_id: f.account_id.clone(),
                        user_id: f.user_id.clone(),
                        display_name: "Renamed".into(),
                        license_type: LicenseType::Plus as i32,
                        update_mask,
                    })
                    .await
                    .map(drop)
            },
        ));
    }
    for license in BAD_ENUMS {
        cases.push(case(
            format!("UpdateUser license_type {license}"),
            "license_type",
            async move {
                app.users()
                    .update_user(UpdateUserRequest {
                        emergency_location_id: String::new(),
                        account_id: f.account_id.clone(),
                        user_id: f.user_id.clone(),
                        display_name: String::new(),
                        license_type: license,
                        update_mask: Some(mask(&["license_type"])),
                    })
                    .await
                    .map(drop)
            },
        ));
    }
    cases.push(case(
        "UpdateUser display_name huge",
        "display_name",
        async move {
            app.users()
                .update_user(UpdateUserRequest {
                    emergency_location_id: String::new(),
                    account_id: f.account_id.clone(),
                    user_id: f.user_id.clone(),
                    display_name: huge(),
                    license_type: LicenseType::Plus as i32,
                    update_mask: None,
                })
                .await
                .map(drop)
        },
    ));
    cases
}

async fn hostile_user_requests(backend: Backend) {
    run_cases(backend, user_cases).await;
}

on_both_databases!(hostile_user_requests,);
