//! Hostile fields in every AccountService request.

use super::{Case, Fixture, bad_ids, bad_page_tokens, case, huge, run_cases, show};
use crate::common::{Backend, TestApp};
use telephony_admin::proto::{
    CreateAccountRequest, DeleteAccountRequest, GetAccountRequest, ListAccountsRequest,
    UpdateAccountRequest,
};

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

async fn hostile_account_requests(backend: Backend) {
    run_cases(backend, account_cases).await;
}

on_both_databases!(hostile_account_requests,);
