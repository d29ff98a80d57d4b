//! The session-service role: a key that may only watch and list changes, read users and
//! acknowledge sign-outs. Every RPC of the access-control table is called with such a key,
//! organisation-wide and scoped to an account (inside and outside it): the five it may call
//! work, every other one is PERMISSION_DENIED naming the role, and a refused change leaves
//! everything as it was.

use telephony_admin::keys::{Role, Scope};
use tonic::Code;

use crate::access_control::roles::Bench;
use crate::access_control::table::{Rpc, table};
use crate::common::Backend;
use crate::common::account_scope;

/// What a session-service key may call.
fn allowed(rpc: Rpc) -> bool {
    matches!(
        rpc,
        Rpc::GetUser
            | Rpc::GetCaller
            | Rpc::ListUsers
            | Rpc::WatchChanges
            | Rpc::ListChanges
            | Rpc::AcknowledgeSignOut
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Organisation,
    AccountOwn,
    AccountOther,
}

async fn a_session_service_key_may_only_watch_read_users_and_acknowledge(backend: Backend) {
    let bench = Bench::start(backend).await;
    let app = &bench.app;
    let mut failures = Vec::new();
    let mut allowed_calls = 0;
    for row in table() {
        for key_kind in [Key::Organisation, Key::AccountOwn, Key::AccountOther] {
            let own = app.create_account("Own").await.account_id;
            let other = app.create_account("Other").await.account_id;
            let scope = match key_kind {
                Key::Organisation => Scope::Organisation,
                Key::AccountOwn | Key::AccountOther => account_scope(&own),
            };
            let key = app.create_key(Role::SessionService, scope).await;
            let target_account = if key_kind == Key::AccountOther {
                &other
            } else {
                &own
            };
            let target = row.rpc.prepare(&bench, target_account).await;
            let before = app.snapshot(&[&own, &other]).await;
            let outcome = row.rpc.call(app, Some(&key), &target).await;
            let case = format!(
                "{} with a {key_kind:?} session-service key",
                row.rpc.full_name()
            );
            let expected: Result<(), &str> = match (allowed(row.rpc), key_kind) {
                // Asking who it is names no account.
                (true, _) if row.rpc == Rpc::GetCaller => Ok(()),
                (true, Key::AccountOther) => Err("outside this API key's account"),
                (true, _) => Ok(()),
                (false, _) => Err("session-service role"),
            };
            match (&outcome, expected) {
                (Ok(()), Ok(())) => allowed_calls += 1,
                (Ok(()), Err(_)) => failures.push(format!("{case}: allowed")),
                (Err(status), Ok(())) => failures.push(format!("{case}: refused: {status:?}")),
                (Err(status), Err(fragment)) => {
                    if status.code() != Code::PermissionDenied
                        || !status.message().contains(fragment)
                    {
                        failures.push(format!(
                            "{case}: got {:?} {:?}, expected PERMISSION_DENIED with {fragment:?}",
                            status.code(),
                            status.message()
                        ));
                    }
                    if row.mutates && app.snapshot(&[&own, &other]).await != before {
                        failures.push(format!("{case}: refused, but the state changed"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        allowed_calls, 13,
        "five RPCs with an organisation and an own-account key, and GetCaller with any key"
    );
}

on_both_databases!(a_session_service_key_may_only_watch_read_users_and_acknowledge);
