//! Helpers of the batch scenarios: blocks of numbers, users made in bulk, and the comparison of
//! an item's `google.rpc.Status` with what the single RPC answers.

use telephony_admin::proto::{
    BatchCreateUsersRequest, User, batch_create_users_request::Item as NewUser,
};
use tonic::Code;
use tonic_types::pb;

use super::TestApp;

/// `count` valid US local numbers from `+1 206 555 <first>`, in E.164 order.
pub fn block(first: usize, count: usize) -> Vec<String> {
    assert!(first + count <= 10_000);
    (first..first + count)
        .map(|line| format!("+1206555{line:04}"))
        .collect()
}

/// The status a single RPC answered, as a batch item carries it.
pub fn rpc_status(status: &tonic::Status) -> pb::Status {
    use prost::Message;
    if !status.details().is_empty() {
        return pb::Status::decode(status.details()).expect("details are a google.rpc.Status");
    }
    pb::Status {
        code: status.code() as i32,
        message: status.message().to_owned(),
        details: Vec::new(),
    }
}

/// An item's status code.
pub fn code_of(status: &Option<pb::Status>) -> Code {
    Code::from_i32(status.as_ref().expect("every result has a status").code)
}

/// The user with the fields that differ between two runs of the same change cleared.
pub fn timeless(mut user: User) -> User {
    user.update_time = None;
    user.create_time = None;
    if let Some(pending) = user.sign_out_pending.as_mut() {
        pending.oldest_change_time = None;
        pending.latest_change_time = None;
    }
    user
}

/// `count` users of the account made by one batch, emails `<prefix>-<i>@example.com`.
pub async fn bulk_users(app: &TestApp, account_id: &str, prefix: &str, count: usize) -> Vec<User> {
    let items = (0..count)
        .map(|i| NewUser {
            email: format!("{prefix}-{i}@example.com"),
            display_name: format!("User {i}"),
            license_type: telephony_admin::proto::LicenseType::Basic as i32,
            ..Default::default()
        })
        .collect();
    let results = app
        .users()
        .batch_create_users(BatchCreateUsersRequest {
            account_id: account_id.into(),
            items,
            ..Default::default()
        })
        .await
        .expect("batch create users")
        .into_inner()
        .results;
    results
        .into_iter()
        .map(|r| {
            assert_eq!(code_of(&r.status), Code::Ok, "{r:?}");
            r.user.expect("a created user")
        })
        .collect()
}
