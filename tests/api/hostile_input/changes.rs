//! Hostile fields in every ChangeService request.

use super::{Case, Fixture, bad_ids, bad_page_tokens, case, run_cases, show};
use crate::common::{Backend, TestApp};
use telephony_admin::proto::{ListChangesRequest, WatchChangesRequest};

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

async fn hostile_change_requests(backend: Backend) {
    run_cases(backend, change_cases).await;
}

on_both_databases!(hostile_change_requests,);
