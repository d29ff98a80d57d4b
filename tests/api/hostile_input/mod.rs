//! Malformed and hostile input to every RPC: empty and 100 KB strings, unknown enum numbers,
//! bad field masks, garbage page tokens, ids that are not UUIDs, and bytes on the wire that are
//! not a protobuf message at all. Each gets a precise error whose message does not echo the
//! input back, nothing is stored, and the server keeps serving.
//!
//! This module holds the hostile values, the fixture they act on, and the runner that checks
//! every case; the cases themselves are listed service by service.

use crate::common::fixtures::mask;
use crate::common::{Backend, TestApp, spawn_app};
use std::future::Future;
use std::pin::Pin;
use telephony_admin::proto::{CreateAccountRequest, DeletePhoneNumberRequest};
use tonic::{Code, Status};

mod accounts;
mod changes;
mod phone_numbers;
mod telephony;
mod users;
mod valid_extremes;
mod wire;

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
