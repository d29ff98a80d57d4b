mod common;

use common::{Backend, spawn_app};
use telephony_admin::proto::CreateAccountRequest;

async fn create_account_round_trip(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app
        .accounts()
        .create_account(CreateAccountRequest {
            name: "Acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(account.name, "Acme");
}

on_both_databases!(create_account_round_trip);
