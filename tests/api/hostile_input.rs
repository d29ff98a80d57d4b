//! Malformed and hostile input to every RPC: empty and 100 KB strings, unknown enum numbers,
//! bad field masks, garbage page tokens, ids that are not UUIDs, and bytes on the wire that are
//! not a protobuf message at all. Each gets a precise error whose message does not echo the
//! input back, nothing is stored, and the server keeps serving.

use std::future::Future;
use std::pin::Pin;

use crate::common::fixtures::mask;
use crate::common::{Backend, TestApp, spawn_app};
use http::uri::PathAndQuery;
use prost::Message;
use prost::bytes::{Buf, BufMut};
use telephony_admin::proto::{
    AssignPhoneNumberRequest, CreateAccountRequest, CreatePhoneNumberOrderRequest,
    CreateUserRequest, DeleteAccountRequest, DeletePhoneNumberRequest, DeleteUserRequest,
    GetAccountRequest, GetPhoneNumberOrderRequest, GetPhoneNumberRequest,
    GetTelephonySettingsRequest, GetUserRequest, LicenseType, ListAccountsRequest,
    ListAccountsResponse, ListChangesRequest, ListPhoneNumbersRequest, ListUsersRequest,
    LogoutUserRequest, OrderedPhoneNumberStatus, PhoneNumberOrderStatus, PhoneNumberProductType,
    PhoneNumberStatus, RestorePhoneNumberRequest, TelephonySettings, UnassignPhoneNumberRequest,
    UpdateAccountRequest, UpdatePhoneNumberRequest, UpdateTelephonySettingsRequest,
    UpdateUserRequest, WatchChangesRequest,
};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// 100 KB of text: far above every field's limit, far below the message limit.
fn huge() -> String {
    "x".repeat(100 * 1024)
}

/// Strings that are no identifier.
fn bad_ids() -> Vec<String> {
    vec![
        String::new(),
        "not-a-uuid".into(),
        "'; DROP TABLE accounts; --".into(),
        "../../etc/passwd".into(),
        "0190a5b2-7c4e-7d1a-9b3f-2a6c8e4d1f00\0".into(),
        "0190a5b2-7c4e-7d1a-9b3f-2a6c8e4d1f00 OR 1=1".into(),
        huge(),
    ]
}

const BAD_ENUMS: [i32; 4] = [99, -1, i32::MAX, i32::MIN];

/// Masks no update accepts: an unknown path, a 100 KB path, 1000 distinct unknown paths.
fn bad_masks() -> Vec<Option<prost_types::FieldMask>> {
    let many: Vec<String> = (0..1000).map(|i| format!("field_{i}")).collect();
    vec![
        Some(mask(&["email"])),
        Some(mask(&["telephony_settings.sms.extra"])),
        Some(mask(&[""])),
        Some(mask(&[&huge()])),
        Some(prost_types::FieldMask { paths: many }),
    ]
}

fn bad_page_tokens() -> Vec<String> {
    vec![
        "garbage".into(),
        "!!!".into(),
        // Base64 of `{"v":1,"k":"x","f":"0000000000000000"}`: well-formed, wrong filters.
        "eyJ2IjoxLCJrIjoieCIsImYiOiIwMDAwMDAwMDAwMDAwMDAwIn0".into(),
        // Base64 of `{"v":9}`.
        "eyJ2Ijo5fQ".into(),
        huge(),
    ]
}

/// What the hostile requests act on: real ids, so that only the hostile field is wrong.
struct Fixture {
    account_id: String,
    user_id: String,
    /// Assigned to the user.
    assigned: String,
    /// In the deletion queue.
    deleted: String,
    order_id: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let account_id = app.create_account("Acme").await.account_id;
    let user_id = app
        .create_user(&account_id, "ann@example.com")
        .await
        .user_id;
    let order = app
        .order_business_numbers(&["+12065550100", "+12065550101", "+12065550102"])
        .await;
    app.assign(&account_id, &user_id, "+12065550100")
        .await
        .expect("assign");
    app.numbers()
        .delete_phone_number(DeletePhoneNumberRequest {
            phone_number_id: "+12065550102".into(),
        })
        .await
        .expect("delete");
    Fixture {
        account_id,
        user_id,
        assigned: "+12065550100".into(),
        deleted: "+12065550102".into(),
        order_id: order.order_id,
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile fields, RPC by RPC.
// ---------------------------------------------------------------------------------------------

type Call<'a> = Pin<Box<dyn Future<Output = Result<(), Status>> + Send + 'a>>;

/// One hostile request: what it is, the field the error must name, and the call.
struct Case<'a> {
    name: String,
    field: &'static str,
    call: Call<'a>,
}

fn case<'a>(
    name: impl Into<String>,
    field: &'static str,
    call: impl Future<Output = Result<(), Status>> + Send + 'a,
) -> Case<'a> {
    Case {
        name: name.into(),
        field,
        call: Box::pin(call),
    }
}

/// A short description of a hostile value, for failure messages.
fn show(value: &str) -> String {
    if value.len() > 40 {
        format!("<{} bytes>", value.len())
    } else {
        format!("{value:?}")
    }
}

fn account_cases<'a>(app: &'a TestApp, f: &'a Fixture) -> Vec<Case<'a>> {
    let mut cases = Vec::new();
    for name in [
        String::new(),
        "   ".into(),
        huge(),
        "bad\0name".into(),
        "tab\there".into(),
    ] {
        cases.push(case(
            format!("CreateAccount name {}", show(&name)),
            "name",
            async move {
                app.accounts()
                    .create_account(CreateAccountRequest { name })
                    .await
                    .map(drop)
            },
        ));
    }
    cases.push(case("UpdateAccount name huge", "name", async move {
        app.accounts()
            .update_account(UpdateAccountRequest {
                account_id: f.account_id.clone(),
                name: huge(),
            })
            .await
            .map(drop)
    }));
    cases.push(case("UpdateAccount name empty", "name", async move {
        app.accounts()
            .update_account(UpdateAccountRequest {
                account_id: f.account_id.clone(),
                name: String::new(),
            })
            .await
            .map(drop)
    }));
    for id in bad_ids() {
        let label = show(&id);
        let (a, b, c) = (id.clone(), id.clone(), id);
        cases.push(case(
            format!("GetAccount account_id {label}"),
            "account_id",
            async move {
                app.accounts()
                    .get_account(GetAccountRequest { account_id: a })
                    .await
                    .map(drop)
            },
        ));
        cases.push(case(
            format!("UpdateAccount account_id {label}"),
            "account_id",
            async move {
                app.accounts()
                    .update_account(UpdateAccountRequest {
                        account_id: b,
                        name: "Renamed".into(),
                    })
                    .await
                    .map(drop)
            },
        ));
        cases.push(case(
            format!("DeleteAccount account_id {label}"),
            "account_id",
            async move {
                app.accounts()
                    .delete_account(DeleteAccountRequest { account_id: c })
                    .await
                    .map(drop)
            },
        ));
    }
    for page_size in [-1, i32::MIN, 1001, i32::MAX] {
        cases.push(case(
            format!("ListAccounts page_size {page_size}"),
            "page_size",
            async move {
                app.accounts()
                    .list_accounts(ListAccountsRequest {
                        page_size,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            },
        ));
    }
    for page_token in bad_page_tokens() {
        cases.push(case(
            format!("ListAccounts page_token {}", show(&page_token)),
            "page_token",
            async move {
                app.accounts()
                    .list_accounts(ListAccountsRequest {
                        page_token,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            },
        ));
    }
    cases.push(case(
        "ListAccounts name_prefix huge",
        "name_prefix",
        async move {
            app.accounts()
                .list_accounts(ListAccountsRequest {
                    name_prefix: huge(),
                    ..Default::default()
                })
                .await
                .map(drop)
        },
    ));
    cases
}

fn user_cases<'a>(app: &'a TestApp, f: &'a Fixture) -> Vec<Case<'a>> {
    let mut cases = Vec::new();
    let create = move |account_id: String, email: String, display_name: String, license: i32| async move {
        app.users()
            .create_user(CreateUserRequest {
                account_id,
                email,
                display_name,
                license_type: license,
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

fn telephony_cases<'a>(app: &'a TestApp, f: &'a Fixture) -> Vec<Case<'a>> {
    let mut cases = Vec::new();
    let all_on = || {
        Some(TelephonySettings {
            inbound_calling: true,
            outbound_calling: true,
            sms: true,
        })
    };
    for id in bad_ids() {
        let label = show(&id);
        let ids = [
            (id.clone(), f.user_id.clone(), "account_id"),
            (f.account_id.clone(), id.clone(), "user_id"),
        ];
        for (account_id, user_id, field) in ids {
            let (a1, u1) = (account_id.clone(), user_id.clone());
            cases.push(case(
                format!("AssignPhoneNumber {field} {label}"),
                field,
                async move {
                    app.telephony()
                        .assign_phone_number(AssignPhoneNumberRequest {
                            account_id: a1,
                            user_id: u1,
                            e164_phone_number: "+12065550101".into(),
                            request_id: String::new(),
                        })
                        .await
                        .map(drop)
                },
            ));
            let (a2, u2) = (account_id.clone(), user_id.clone());
            cases.push(case(
                format!("UnassignPhoneNumber {field} {label}"),
                field,
                async move {
                    app.telephony()
                        .unassign_phone_number(UnassignPhoneNumberRequest {
                            account_id: a2,
                            user_id: u2,
                            confirm: true,
                            request_id: String::new(),
                        })
                        .await
                        .map(drop)
                },
            ));
            let (a3, u3) = (account_id.clone(), user_id.clone());
            cases.push(case(
                format!("GetTelephonySettings {field} {label}"),
                field,
                async move {
                    app.telephony()
                        .get_telephony_settings(GetTelephonySettingsRequest {
                            account_id: a3,
                            user_id: u3,
                        })
                        .await
                        .map(drop)
                },
            ));
            cases.push(case(
                format!("UpdateTelephonySettings {field} {label}"),
                field,
                async move {
                    app.telephony()
                        .update_telephony_settings(UpdateTelephonySettingsRequest {
                            account_id,
                            user_id,
                            telephony_settings: all_on(),
                            update_mask: None,
                            request_id: String::new(),
                        })
                        .await
                        .map(drop)
                },
            ));
        }
    }
    for number in [String::new(), huge(), "+1".into(), "not a number".into()] {
        cases.push(case(
            format!("AssignPhoneNumber e164_phone_number {}", show(&number)),
            "e164_phone_number",
            async move {
                app.telephony()
                    .assign_phone_number(AssignPhoneNumberRequest {
                        account_id: f.account_id.clone(),
                        user_id: f.user_id.clone(),
                        e164_phone_number: number,
                        request_id: String::new(),
                    })
                    .await
                    .map(drop)
            },
        ));
    }
    for request_id in ["not-a-uuid".to_owned(), huge(), "'; --".into()] {
        let label = show(&request_id);
        let (r1, r2, r3) = (request_id.clone(), request_id.clone(), request_id);
        cases.push(case(
            format!("AssignPhoneNumber request_id {label}"),
            "request_id",
            async move {
                app.telephony()
                    .assign_phone_number(AssignPhoneNumberRequest {
                        account_id: f.account_id.clone(),
                        user_id: f.user_id.clone(),
                        e164_phone_number: "+12065550101".into(),
                        request_id: r1,
                    })
                    .await
                    .map(drop)
            },
        ));
        cases.push(case(
            format!("UnassignPhoneNumber request_id {label}"),
            "request_id",
            async move {
                app.telephony()
                    .unassign_phone_number(UnassignPhoneNumberRequest {
                        account_id: f.account_id.clone(),
                        user_id: f.user_id.clone(),
                        confirm: true,
                        request_id: r2,
                    })
                    .await
                    .map(drop)
            },
        ));
        cases.push(case(
            format!("UpdateTelephonySettings request_id {label}"),
            "request_id",
            async move {
                app.telephony()
                    .update_telephony_settings(UpdateTelephonySettingsRequest {
                        account_id: f.account_id.clone(),
                        user_id: f.user_id.clone(),
                        telephony_settings: all_on(),
                        update_mask: None,
                        request_id: r3,
                    })
                    .await
                    .map(drop)
            },
        ));
    }
    cases.push(case(
        "UnassignPhoneNumber without confirm",
        "confirm",
        async move {
            app.telephony()
                .unassign_phone_number(UnassignPhoneNumberRequest {
                    account_id: f.account_id.clone(),
                    user_id: f.user_id.clone(),
                    confirm: false,
                    request_id: String::new(),
                })
                .await
                .map(drop)
        },
    ));
    cases.push(case(
        "UpdateTelephonySettings without settings",
        "telephony_settings",
        async move {
            app.telephony()
                .update_telephony_settings(UpdateTelephonySettingsRequest {
                    account_id: f.account_id.clone(),
                    user_id: f.user_id.clone(),
                    telephony_settings: None,
                    update_mask: None,
                    request_id: String::new(),
                })
                .await
                .map(drop)
        },
    ));
    for (i, update_mask) in bad_masks().into_iter().enumerate() {
        cases.push(case(
            format!("UpdateTelephonySettings bad mask #{i}"),
            "update_mask",
            async move {
                app.telephony()
                    .update_telephony_settings(UpdateTelephonySettingsRequest {
                        account_id: f.account_id.clone(),
                        user_id: f.user_id.clone(),
                        telephony_settings: all_on(),
                        update_mask,
                        request_id: String::new(),
                    })
                    .await
                    .map(drop)
            },
        ));
    }
    cases
}

fn change_cases<'a>(app: &'a TestApp, _f: &'a Fixture) -> Vec<Case<'a>> {
    let mut cases = Vec::new();
    for id in bad_ids().into_iter().filter(|id| !id.is_empty()) {
        let label = show(&id);
        let requests = [
            (id.clone(), String::new(), "account_id"),
            (String::new(), id.clone(), "user_id"),
        ];
        for (account_id, user_id, field) in requests {
            let (a, u) = (account_id.clone(), user_id.clone());
            cases.push(case(
                format!("WatchChanges {field} {label}"),
                field,
                async move {
                    app.changes()
                        .watch_changes(WatchChangesRequest {
                            account_id: a,
                            user_id: u,
                            after_sequence: None,
                            ..Default::default()
                        })
                        .await
                        .map(drop)
                },
            ));
            cases.push(case(
                format!("ListChanges {field} {label}"),
                field,
                async move {
                    app.changes()
                        .list_changes(ListChangesRequest {
                            account_id,
                            user_id,
                            ..Default::default()
                        })
                        .await
                        .map(drop)
                },
            ));
        }
    }
    for page_token in bad_page_tokens() {
        cases.push(case(
            format!("ListChanges page_token {}", show(&page_token)),
            "page_token",
            async move {
                app.changes()
                    .list_changes(ListChangesRequest {
                        page_token,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            },
        ));
    }
    for page_size in [-1, 1001] {
        cases.push(case(
            format!("ListChanges page_size {page_size}"),
            "page_size",
            async move {
                app.changes()
                    .list_changes(ListChangesRequest {
                        page_size,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            },
        ));
    }
    cases
}

/// Runs the cases: each must be INVALID_ARGUMENT naming the field, with a message and details
/// that stay small whatever the input's size; afterwards nothing has changed.
async fn run_cases(backend: Backend, make: for<'a> fn(&'a TestApp, &'a Fixture) -> Vec<Case<'a>>) {
    let app = spawn_app(backend).await;
    let f = fixture(&app).await;
    let before = app.snapshot(&[&f.account_id]).await;
    let cases = make(&app, &f);
    let count = cases.len();
    let mut failures = Vec::new();
    for Case { name, field, call } in cases {
        match call.await {
            Ok(()) => failures.push(format!("{name}: accepted")),
            Err(status) => {
                if status.code() != Code::InvalidArgument {
                    failures.push(format!(
                        "{name}: {:?} {:?}, expected INVALID_ARGUMENT",
                        status.code(),
                        status.message()
                    ));
                } else if !status.message().contains(field) {
                    failures.push(format!(
                        "{name}: the message does not name {field}: {:?}",
                        status.message()
                    ));
                }
                if status.message().len() > 1024 || status.details().len() > 2048 {
                    failures.push(format!(
                        "{name}: the error echoes the input ({} byte message, {} byte details)",
                        status.message().len(),
                        status.details().len()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} hostile requests were mishandled:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        before,
        app.snapshot(&[&f.account_id]).await,
        "a refused request changed state"
    );
    // Still serving.
    app.accounts()
        .create_account(CreateAccountRequest {
            name: "Afterwards".into(),
        })
        .await
        .expect("the server still serves");
}

async fn hostile_account_requests(backend: Backend) {
    run_cases(backend, account_cases).await;
}

async fn hostile_user_requests(backend: Backend) {
    run_cases(backend, user_cases).await;
}

async fn hostile_phone_number_requests(backend: Backend) {
    run_cases(backend, phone_number_cases).await;
}

async fn hostile_telephony_requests(backend: Backend) {
    run_cases(backend, telephony_cases).await;
}

async fn hostile_change_requests(backend: Backend) {
    run_cases(backend, change_cases).await;
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

/// Values at the edge of their range that are still valid are answered normally.
async fn extreme_but_valid_values(backend: Backend) {
    let app = spawn_app(backend).await;
    let f = fixture(&app).await;
    // A resume point beyond the last event: nothing to list, and a watch that is refused.
    let events = app
        .changes()
        .list_changes(ListChangesRequest {
            after_sequence: u64::MAX,
            ..Default::default()
        })
        .await
        .expect("after_sequence u64::MAX")
        .into_inner()
        .events;
    assert!(events.is_empty(), "{events:?}");
    let refused = app
        .changes()
        .watch_changes(WatchChangesRequest {
            after_sequence: Some(u64::MAX),
            ..Default::default()
        })
        .await
        .expect_err("a watch from u64::MAX, beyond the log, is refused");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    // The largest page and a maximal, valid name.
    app.accounts()
        .list_accounts(ListAccountsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("page_size 1000");
    let renamed = app
        .accounts()
        .update_account(UpdateAccountRequest {
            account_id: f.account_id.clone(),
            name: "é".repeat(100),
        })
        .await
        .expect("a 100-character name")
        .into_inner();
    assert_eq!(renamed.name.chars().count(), 100);
    // Repeating a known mask path is harmless.
    let settings = app
        .telephony()
        .update_telephony_settings(UpdateTelephonySettingsRequest {
            account_id: f.account_id.clone(),
            user_id: f.user_id.clone(),
            telephony_settings: Some(TelephonySettings {
                inbound_calling: false,
                outbound_calling: false,
                sms: true,
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["sms".into(); 1000],
            }),
            request_id: String::new(),
        })
        .await
        .expect("1000 copies of a known path")
        .into_inner();
    assert!(settings.sms && !settings.inbound_calling);
}

// ---------------------------------------------------------------------------------------------
// Bytes that are not a protobuf message.
// ---------------------------------------------------------------------------------------------

/// Sends and receives message bodies as raw bytes, so a request can be anything at all.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut bytes = vec![0; src.remaining()];
        src.copy_to_slice(&mut bytes);
        Ok(Some(bytes))
    }
}

/// Every method, whether it streams, and the number of a string field of its request.
const METHODS: [(&str, bool, u8); 24] = [
    ("AccountService/CreateAccount", false, 1),
    ("AccountService/GetAccount", false, 1),
    ("AccountService/ListAccounts", false, 2),
    ("AccountService/UpdateAccount", false, 1),
    ("AccountService/DeleteAccount", false, 1),
    ("UserService/CreateUser", false, 1),
    ("UserService/GetUser", false, 1),
    ("UserService/ListUsers", false, 1),
    ("UserService/UpdateUser", false, 1),
    ("UserService/DeleteUser", false, 1),
    ("UserService/LogoutUser", false, 1),
    ("PhoneNumberService/CreatePhoneNumberOrder", false, 2),
    ("PhoneNumberService/GetPhoneNumberOrder", false, 1),
    ("PhoneNumberService/GetPhoneNumber", false, 1),
    ("PhoneNumberService/ListPhoneNumbers", false, 3),
    ("PhoneNumberService/UpdatePhoneNumber", false, 1),
    ("PhoneNumberService/DeletePhoneNumber", false, 1),
    ("PhoneNumberService/RestorePhoneNumber", false, 1),
    ("TelephonyService/AssignPhoneNumber", false, 1),
    ("TelephonyService/UnassignPhoneNumber", false, 1),
    ("TelephonyService/GetTelephonySettings", false, 1),
    ("TelephonyService/UpdateTelephonySettings", false, 1),
    ("ChangeService/WatchChanges", true, 1),
    ("ChangeService/ListChanges", false, 1),
];

/// Sends `body` as the request of `method` with the admin key; the server's answer.
async fn send_raw(
    app: &TestApp,
    method: &str,
    streaming: bool,
    body: Vec<u8>,
    authorization: http::HeaderValue,
) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.expect("the channel is ready");
    let path: PathAndQuery = format!("/telephony.admin.v1.{method}")
        .parse()
        .expect("a path");
    let mut request = tonic::Request::new(body);
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", authorization);
    *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
    if streaming {
        grpc.server_streaming(request, path, RawCodec)
            .await
            .map(drop)
    } else {
        grpc.unary(request, path, RawCodec).await.map(drop)
    }
}

fn bearer(app: &TestApp) -> http::HeaderValue {
    format!("Bearer {}", app.admin_key).parse().unwrap()
}

/// Raw garbage, a string field that is not UTF-8, and a truncated message, to every method:
/// tonic refuses each as INTERNAL (its code for a request that does not decode), before any
/// handler runs; nothing is stored, and the same connection keeps serving.
async fn bytes_that_are_not_protobuf(backend: Backend) {
    let app = spawn_app(backend).await;
    let f = fixture(&app).await;
    let before = app.snapshot(&[&f.account_id]).await;
    let mut failures = Vec::new();
    for (method, streaming, string_field) in METHODS {
        let tag = (string_field << 3) | 2;
        let bodies: [(&str, Vec<u8>); 5] = [
            ("an overlong varint", vec![0xff; 11]),
            ("wire type 7", vec![0x0f, 0x01, 0x02]),
            (
                "an HTTP request",
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            ),
            ("invalid UTF-8 in a string field", vec![tag, 2, 0xff, 0xfe]),
            ("a truncated message", vec![tag, 10, b'a', b'b', b'c']),
        ];
        for (what, body) in bodies {
            match send_raw(&app, method, streaming, body, bearer(&app)).await {
                Ok(()) => failures.push(format!("{method} with {what}: accepted")),
                Err(status) => {
                    if status.code() != Code::Internal
                        || !status
                            .message()
                            .contains("failed to decode Protobuf message")
                    {
                        failures.push(format!(
                            "{method} with {what}: {:?} {:?}",
                            status.code(),
                            status.message()
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(before, app.snapshot(&[&f.account_id]).await);

    // The raw client itself is sound: a well-formed body is answered, and an unknown field in
    // it is ignored.
    let mut body = ListAccountsRequest::default().encode_to_vec();
    body.extend([(99 << 3) as u8 | 0x80, 0x06, 0x01]); // field 99, varint 1
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(body);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", app.admin_key).parse().unwrap(),
    );
    let answer = grpc
        .unary(
            request,
            PathAndQuery::from_static("/telephony.admin.v1.AccountService/ListAccounts"),
            RawCodec,
        )
        .await
        .expect("a well-formed raw request")
        .into_inner();
    let accounts = ListAccountsResponse::decode(answer.as_slice()).expect("a response");
    assert_eq!(accounts.accounts, before.accounts);

    app.accounts()
        .create_account(CreateAccountRequest {
            name: "Afterwards".into(),
        })
        .await
        .expect("the server still serves");
}

/// An `authorization` value with bytes that are not text is UNAUTHENTICATED, not a crash.
async fn authorization_that_is_not_text(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = app
        .accounts()
        .list_accounts(ListAccountsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let body = CreateAccountRequest {
        name: "Never".into(),
    }
    .encode_to_vec();
    for value in [
        b"Bearer \xff\xfe\xfd".as_slice(),
        b"\xc3\xa9\xc3\xa9".as_slice(),
        format!("Bearer {}\u{e9}", app.admin_key).as_bytes(),
    ] {
        let value = http::HeaderValue::from_bytes(value).expect("obs-text is a valid header value");
        let refused = send_raw(
            &app,
            "AccountService/CreateAccount",
            false,
            body.clone(),
            value,
        )
        .await
        .expect_err("not a key");
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    let after = app
        .accounts()
        .list_accounts(ListAccountsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before, after);
}

on_both_databases!(
    hostile_account_requests,
    hostile_user_requests,
    hostile_phone_number_requests,
    hostile_telephony_requests,
    hostile_change_requests,
    hostile_numbers_in_an_order_fail_one_by_one,
    extreme_but_valid_values,
    bytes_that_are_not_protobuf,
    authorization_that_is_not_text,
);
