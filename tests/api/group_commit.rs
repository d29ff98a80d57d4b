//! Group commit, on both databases: the server's one writer runs concurrent writes in shared
//! transactions, each in a savepoint of its own. A write that fails inside a batch gets its own
//! error and leaves no trace (no event, no sequence number), the others of the batch commit,
//! sequences stay gap-free, and retries of one idempotent request inside one batch share the
//! first result.
//!
//! The servers here let the writer wait a moment for writes to gather, and the tests repeat a
//! round until the writer's counters show the kind of batch the test is about (a loaded machine
//! may split a round), so that no assertion depends on timing.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::future::join_all;
use telephony_admin::proto::{
    AssignPhoneNumberRequest, ChangeKind, ListChangesRequest, LogoutUserRequest,
    UnassignPhoneNumberRequest, User,
};
use tonic::Code;

use crate::common::fixtures::{UNKNOWN_ID, number};
use crate::common::{Backend, TestApp, spawn_app_with};

/// How long the writer waits for a batch to gather in these tests.
const GATHER: Duration = Duration::from_millis(150);
/// Rounds tried before a test gives up on seeing the batch it needs.
const MAX_ROUNDS: usize = 10;

async fn spawn_batching_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| s.write_batch_wait = GATHER).await
}

/// Every retained event of the account after `after`, in sequence order.
async fn events_after(app: &TestApp, account_id: &str, after: u64) -> Vec<(u64, i32, String)> {
    app.all_changes_as(
        &app.admin_key,
        ListChangesRequest {
            account_id: account_id.into(),
            after_sequence: after,
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|e| (e.sequence, e.kind, e.user_id))
    .collect()
}

/// All retained events of every account, as sequences.
async fn all_sequences(app: &TestApp) -> Vec<u64> {
    app.all_changes("", "")
        .await
        .into_iter()
        .map(|e| e.sequence)
        .collect()
}

async fn failing_write_in_a_batch_leaves_the_others_committed(backend: Backend) {
    let app = spawn_batching_app(backend).await;
    let account = app.create_account("Batch").await;
    let mut users = Vec::new();
    for i in 0..8 {
        users.push(
            app.create_user(&account.account_id, &format!("u{i}@example.com"))
                .await,
        );
    }
    let mut last_sequence = 0;
    for round in 0.. {
        assert!(
            round < MAX_ROUNDS,
            "no batch mixed failed and committed writes"
        );
        let mixed_before = app.write_stats.mixed_batches();
        // Per user: a sign-out that commits, an unassignment that fails (no number) and a
        // sign-out of an unknown user of the account that fails.
        let calls = users.iter().flat_map(|user| {
            let account_id = account.account_id.clone();
            let user_id = user.user_id.clone();
            let mut users_client = app.users();
            let mut failing_users = app.users();
            let mut telephony = app.telephony();
            let (a1, a2, a3, u1, u2) = (
                account_id.clone(),
                account_id.clone(),
                account_id,
                user_id.clone(),
                user_id.clone(),
            );
            [
                Box::pin(async move {
                    users_client
                        .logout_user(LogoutUserRequest {
                            account_id: a1,
                            user_id: u1.clone(),
                        })
                        .await
                        .map(|r| (u1, Some(r.into_inner().sequence)))
                }) as std::pin::Pin<Box<dyn Future<Output = _> + Send>>,
                Box::pin(async move {
                    telephony
                        .unassign_phone_number(UnassignPhoneNumberRequest {
                            account_id: a2,
                            user_id: u2.clone(),
                            confirm: true,
                            request_id: String::new(),
                        })
                        .await
                        .map(|_| (u2, None))
                }),
                Box::pin(async move {
                    failing_users
                        .logout_user(LogoutUserRequest {
                            account_id: a3,
                            user_id: UNKNOWN_ID.into(),
                        })
                        .await
                        .map(|_| (UNKNOWN_ID.to_owned(), None))
                }),
            ]
        });
        let results = join_all(calls).await;

        let mut committed = BTreeSet::new();
        let mut failed_precondition = 0;
        let mut not_found = 0;
        for result in results {
            match result {
                Ok((user_id, Some(sequence))) => {
                    assert!(
                        committed.insert((sequence, user_id)),
                        "a sequence was reused"
                    );
                }
                Ok(other) => panic!("a write that must fail succeeded: {other:?}"),
                Err(status) if status.code() == Code::FailedPrecondition => {
                    assert!(
                        status.message().contains("has no phone number to unassign"),
                        "its own message: {status:?}"
                    );
                    failed_precondition += 1;
                }
                Err(status) if status.code() == Code::NotFound => {
                    assert!(status.message().contains(UNKNOWN_ID), "{status:?}");
                    not_found += 1;
                }
                Err(status) => panic!("unexpected error: {status:?}"),
            }
        }
        assert_eq!(committed.len(), users.len(), "every sign-out committed");
        assert_eq!(failed_precondition, users.len());
        assert_eq!(not_found, users.len());

        // The events are exactly the committed sign-outs, with the sequences they were
        // answered with, gap-free after the previous round.
        let events = events_after(&app, &account.account_id, last_sequence).await;
        let expected: Vec<(u64, i32, String)> = committed
            .iter()
            .map(|(sequence, user_id)| {
                (
                    *sequence,
                    ChangeKind::UserSignOutRequested as i32,
                    user_id.clone(),
                )
            })
            .collect();
        assert_eq!(events, expected, "only committed writes have events");
        let sequences: Vec<u64> = events.iter().map(|e| e.0).collect();
        let gap_free: Vec<u64> = (last_sequence + 1..=last_sequence + users.len() as u64).collect();
        assert_eq!(sequences, gap_free, "no failed write took a sequence");
        last_sequence = *sequences.last().expect("events");

        if app.write_stats.mixed_batches() > mixed_before {
            break;
        }
    }
    assert_eq!(
        all_sequences(&app).await,
        (1..=last_sequence).collect::<Vec<_>>()
    );
}

async fn idempotent_retries_in_one_batch_share_the_first_result(backend: Backend) {
    let app = spawn_batching_app(backend).await;
    let account = app.create_account("Retries").await;
    let numbers: Vec<String> = (0..MAX_ROUNDS).map(number).collect();
    app.order_business_numbers(&numbers).await;
    const RETRIES: usize = 6;
    for (round, e164) in numbers.iter().enumerate() {
        let user = app
            .create_user(&account.account_id, &format!("r{round}@example.com"))
            .await;
        let shared_before = app.write_stats.shared_batches();
        let request_id = uuid::Uuid::new_v4().to_string();
        let assign = AssignPhoneNumberRequest {
            emergency_location_id: String::new(),
            account_id: account.account_id.clone(),
            user_id: user.user_id.clone(),
            e164_phone_number: e164.clone(),
            request_id: request_id.clone(),
        };
        let retries = (0..RETRIES).map(|_| {
            let mut client = app.telephony();
            let request = assign.clone();
            async move { client.assign_phone_number(request).await }
        });
        // The same request_id for another request, in the same batch: refused.
        let mut misuse_client = app.telephony();
        let misuse = misuse_client.unassign_phone_number(UnassignPhoneNumberRequest {
            account_id: account.account_id.clone(),
            user_id: user.user_id.clone(),
            confirm: true,
            request_id: request_id.clone(),
        });
        let (answers, misuse) = tokio::join!(join_all(retries), misuse);

        let answers: Vec<User> = answers
            .into_iter()
            .map(|a| a.expect("every retry succeeds").into_inner())
            .collect();
        assert!(
            answers.iter().all(|a| a == &answers[0]),
            "every retry gets the first result: {answers:?}"
        );
        assert_eq!(answers[0].primary_phone_number, *e164);
        match misuse {
            // Ran after the first assignment: the id is taken by another request.
            Err(status) if status.code() == Code::InvalidArgument => {
                assert!(status.message().contains("request_id"), "{status:?}");
            }
            // Ran first: a real unassignment of a user without a number.
            Err(status) if status.code() == Code::FailedPrecondition => {}
            other => panic!("reusing a request_id for another request: {other:?}"),
        }
        let assigned = app
            .all_changes(&account.account_id, &user.user_id)
            .await
            .into_iter()
            .filter(|e| e.kind == ChangeKind::PhoneNumberAssigned as i32)
            .count();
        assert_eq!(assigned, 1, "one assignment, one event");

        // Several retries went through one transaction: the test has shown what it is about.
        if app.write_stats.shared_batches() > shared_before {
            break;
        }
        assert!(round + 1 < MAX_ROUNDS, "the retries never shared a batch");
    }
    let sequences = all_sequences(&app).await;
    assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());
}

async fn concurrent_writes_keep_sequences_gap_free(backend: Backend) {
    // The default writer: batches are whatever is waiting when a transaction starts.
    let app = crate::common::spawn_app(backend).await;
    let account = app.create_account("Gap-free").await;
    let numbers: Vec<String> = (20..36).map(number).collect();
    app.order_business_numbers(&numbers).await;
    let mut users = Vec::new();
    for i in 0..numbers.len() {
        users.push(
            app.create_user(&account.account_id, &format!("g{i}@example.com"))
                .await,
        );
    }
    let work = users.iter().zip(&numbers).map(|(user, e164)| {
        let account_id = account.account_id.clone();
        let user_id = user.user_id.clone();
        let e164 = e164.clone();
        let mut telephony = app.telephony();
        let mut users_client = app.users();
        async move {
            let mut writes = 0u64;
            for _ in 0..3 {
                telephony
                    .assign_phone_number(AssignPhoneNumberRequest {
                        emergency_location_id: String::new(),
                        account_id: account_id.clone(),
                        user_id: user_id.clone(),
                        e164_phone_number: e164.clone(),
                        request_id: String::new(),
                    })
                    .await
                    .expect("assign");
                users_client
                    .logout_user(LogoutUserRequest {
                        account_id: account_id.clone(),
                        user_id: user_id.clone(),
                    })
                    .await
                    .expect("logout");
                telephony
                    .unassign_phone_number(UnassignPhoneNumberRequest {
                        account_id: account_id.clone(),
                        user_id: user_id.clone(),
                        confirm: true,
                        request_id: String::new(),
                    })
                    .await
                    .expect("unassign");
                writes += 3;
            }
            writes
        }
    });
    let writes: u64 = join_all(work).await.into_iter().sum();
    let sequences = all_sequences(&app).await;
    assert_eq!(sequences, (1..=writes).collect::<Vec<_>>());
    assert!(app.write_stats.mutations() >= writes);
}

/// Single assignments waiting together run as one set run: each gets its own answer (the
/// failures their own errors), only the successes have events, with the sequences their
/// answers name, and the numbers are taken back the same way.
async fn single_requests_waiting_together_run_as_one_and_fail_alone(backend: Backend) {
    const USERS: usize = 8;
    let app = spawn_batching_app(backend).await;
    let account = app.create_account("Joined").await;
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(
            app.create_user(&account.account_id, &format!("j{i}@example.com"))
                .await,
        );
    }
    let mut last_sequence = 0;
    for round in 0.. {
        assert!(round < MAX_ROUNDS, "no run joined single requests");
        let joined_before = app.write_stats.joined_runs();
        let numbers: Vec<String> = (0..USERS)
            .map(|i| format!("+1415555{:04}", 200 + round * USERS + i))
            .collect();
        app.order_business_numbers(&numbers).await;
        let assign = |user_id: String, e164: String| {
            let mut telephony = app.telephony();
            let account_id = account.account_id.clone();
            async move {
                telephony
                    .assign_phone_number(AssignPhoneNumberRequest {
                        emergency_location_id: String::new(),
                        account_id,
                        user_id,
                        e164_phone_number: e164,
                        request_id: String::new(),
                    })
                    .await
                    .map(|r| r.into_inner())
            }
        };
        let mut calls: Vec<std::pin::Pin<Box<dyn Future<Output = _> + Send>>> = users
            .iter()
            .zip(&numbers)
            .map(|(user, e164)| {
                Box::pin(assign(user.user_id.clone(), e164.clone())) as std::pin::Pin<Box<_>>
            })
            .collect();
        // Two that fail: a number not in the inventory, and a user that does not exist.
        calls.push(Box::pin(assign(users[0].user_id.clone(), number(99))));
        calls.push(Box::pin(assign(UNKNOWN_ID.into(), number(98))));
        let mut results = join_all(calls).await;
        let unknown_user = results.pop().expect("answered");
        let unknown_number = results.pop().expect("answered");
        assert_eq!(
            unknown_user.expect_err("no such user").code(),
            Code::NotFound
        );
        let unknown_number = unknown_number.expect_err("no such number");
        assert_eq!(unknown_number.code(), Code::NotFound, "{unknown_number:?}");
        assert!(
            unknown_number.message().contains(&number(99)),
            "{unknown_number:?}"
        );
        let assigned: Vec<User> = results
            .into_iter()
            .map(|result| result.expect("assigned"))
            .collect();

        let events = events_after(&app, &account.account_id, last_sequence).await;
        assert_eq!(
            events.len(),
            USERS,
            "one event per success, none for the failures"
        );
        for (user, e164) in assigned.iter().zip(&numbers) {
            assert_eq!(user.primary_phone_number, *e164);
            let pending = user.sign_out_pending.as_ref().expect("pending sign-out");
            assert!(
                events.contains(&(
                    pending.latest_change_sequence,
                    ChangeKind::PhoneNumberAssigned as i32,
                    user.user_id.clone()
                )),
                "the answer names the user's event: {pending:?} in {events:?}"
            );
        }
        let take_back = users.iter().map(|user| {
            let mut telephony = app.telephony();
            let request = UnassignPhoneNumberRequest {
                account_id: account.account_id.clone(),
                user_id: user.user_id.clone(),
                confirm: true,
                request_id: String::new(),
            };
            async move { telephony.unassign_phone_number(request).await }
        });
        for result in join_all(take_back).await {
            assert!(
                result
                    .expect("unassigned")
                    .into_inner()
                    .primary_phone_number
                    .is_empty()
            );
        }
        let sequences: Vec<u64> = events_after(&app, &account.account_id, last_sequence)
            .await
            .into_iter()
            .map(|e| e.0)
            .collect();
        let gap_free: Vec<u64> = (last_sequence + 1..=last_sequence + 2 * USERS as u64).collect();
        assert_eq!(sequences, gap_free);
        last_sequence += 2 * USERS as u64;
        if app.write_stats.joined_runs() > joined_before {
            break;
        }
    }
}

/// Single assignments and unassignments waiting together run as one set run, the
/// unassignments first: a number taken back is given out again in the same run, and a user
/// whose number is taken back gets another one. The round is repeated until its six requests
/// ran as one batch holding one joined run.
async fn assignments_and_unassignments_waiting_together_run_as_one(backend: Backend) {
    let app = spawn_batching_app(backend).await;
    let account = app.create_account("Both ways").await;
    let account_id = account.account_id.as_str();
    for round in 0.. {
        assert!(round < MAX_ROUNDS, "no run joined both kinds");
        let mut users = Vec::new();
        for i in 0..6 {
            let email = format!("both{round}-{i}@example.com");
            users.push(app.create_user(account_id, &email).await.user_id);
        }
        let numbers: Vec<String> = (0..6)
            .map(|i| format!("+1415556{:04}", round * 6 + i))
            .collect();
        app.order_business_numbers(&numbers).await;
        for i in 0..3 {
            app.assign(account_id, &users[i], &numbers[i])
                .await
                .expect("held before the round");
        }
        let before = (
            app.write_stats.batches(),
            app.write_stats.mutations(),
            app.write_stats.joined_runs(),
        );
        let unassign = |user: &String| {
            let (mut telephony, user) = (app.telephony(), user.clone());
            async move {
                telephony
                    .unassign_phone_number(UnassignPhoneNumberRequest {
                        account_id: account_id.into(),
                        user_id: user,
                        confirm: true,
                        request_id: String::new(),
                    })
                    .await
                    .map(|r| r.into_inner())
            }
        };
        let assign = |user: &String, e164: &String| {
            let (mut telephony, user, e164) = (app.telephony(), user.clone(), e164.clone());
            async move {
                telephony
                    .assign_phone_number(AssignPhoneNumberRequest {
                        account_id: account_id.into(),
                        user_id: user,
                        e164_phone_number: e164,
                        ..Default::default()
                    })
                    .await
                    .map(|r| r.into_inner())
            }
        };
        // users 0..3 hold numbers 0..3. Number 2 goes from user 2 to user 5; user 1 trades
        // number 1 for number 4; user 3 gets number 3.
        let (taken, given) = futures::join!(
            join_all([
                unassign(&users[0]),
                unassign(&users[1]),
                unassign(&users[2])
            ]),
            join_all([
                assign(&users[5], &numbers[2]),
                assign(&users[1], &numbers[4]),
                assign(&users[3], &numbers[3]),
            ]),
        );
        let after = (
            app.write_stats.batches(),
            app.write_stats.mutations(),
            app.write_stats.joined_runs(),
        );
        if after != (before.0 + 1, before.1 + 6, before.2 + 1) {
            continue;
        }
        let answers: Vec<User> = (taken.into_iter().chain(given))
            .map(|answer| answer.expect("decided in one run, unassignments first"))
            .collect();
        let held: Vec<&str> = answers
            .iter()
            .map(|user| user.primary_phone_number.as_str())
            .collect();
        assert_eq!(held, ["", "", "", &numbers[2], &numbers[4], &numbers[3]]);
        for (user, e164) in [(5, 2), (1, 4), (3, 3)] {
            let stored = app.get_user(account_id, &users[user]).await;
            assert_eq!(stored.primary_phone_number, numbers[e164]);
        }
        for user in [0, 2] {
            let stored = app.get_user(account_id, &users[user]).await;
            assert_eq!(stored.primary_phone_number, "");
        }
        // One event per answer, gap-free, each unassignment before the assignments.
        let events = events_after(&app, account_id, 0).await;
        let round_events = &events[events.len() - 6..];
        let first = round_events[0].0;
        let kinds: Vec<i32> = round_events.iter().map(|event| event.1).collect();
        let (unassigned, assigned) = (
            ChangeKind::PhoneNumberUnassigned as i32,
            ChangeKind::PhoneNumberAssigned as i32,
        );
        assert_eq!(
            kinds,
            [
                unassigned, unassigned, unassigned, assigned, assigned, assigned
            ]
        );
        for (at, answer) in answers.iter().enumerate() {
            let pending = answer.sign_out_pending.as_ref().expect("pending sign-out");
            let event = &round_events[(pending.latest_change_sequence - first) as usize];
            assert_eq!(event.2, answer.user_id, "the answer names its own event");
            let kind = if at < 3 { unassigned } else { assigned };
            assert_eq!(event.1, kind);
        }
        let sequences: Vec<u64> = round_events.iter().map(|event| event.0).collect();
        assert_eq!(sequences, (first..first + 6).collect::<Vec<_>>());
        break;
    }
}

/// A sign-out asked earlier in the same batch (by another use case, not yet numbered on
/// PostgreSQL) counts in the pending sign-out an assignment answers: the oldest pending change
/// is the sign-out's, the latest the assignment's own. Repeated until the two shared a batch
/// with the sign-out first.
async fn an_answer_counts_the_sign_outs_asked_before_it_in_its_batch(backend: Backend) {
    let app = spawn_batching_app(backend).await;
    let account = app.create_account("Pending").await;
    let account_id = account.account_id.as_str();
    for round in 0.. {
        assert!(
            round < MAX_ROUNDS,
            "no batch ran the sign-out before the assignment"
        );
        let user = app
            .create_user(account_id, &format!("pending{round}@example.com"))
            .await
            .user_id;
        let e164 = format!("+1415557{round:04}");
        app.order_business_numbers(&[&e164]).await;
        let before = (app.write_stats.batches(), app.write_stats.mutations());
        let (mut users, mut telephony) = (app.users(), app.telephony());
        let (logout, assign) = futures::join!(
            users.logout_user(LogoutUserRequest {
                account_id: account_id.into(),
                user_id: user.clone(),
            }),
            telephony.assign_phone_number(AssignPhoneNumberRequest {
                account_id: account_id.into(),
                user_id: user.clone(),
                e164_phone_number: e164.clone(),
                ..Default::default()
            }),
        );
        let signed_out = logout.expect("logout").into_inner().sequence;
        let assigned = assign.expect("assign").into_inner();
        let pending = assigned.sign_out_pending.expect("pending");
        let one_batch = (app.write_stats.batches(), app.write_stats.mutations())
            == (before.0 + 1, before.1 + 2);
        if one_batch && signed_out < pending.latest_change_sequence {
            assert_eq!(pending.oldest_change_sequence, signed_out);
            assert_eq!(pending.latest_change_sequence, signed_out + 1);
            let stored = app.get_user(account_id, &user).await;
            assert_eq!(stored.sign_out_pending, Some(pending));
            break;
        }
    }
}

on_both_databases!(
    an_answer_counts_the_sign_outs_asked_before_it_in_its_batch,
    assignments_and_unassignments_waiting_together_run_as_one,
    single_requests_waiting_together_run_as_one_and_fail_alone,
    failing_write_in_a_batch_leaves_the_others_committed,
    idempotent_retries_in_one_batch_share_the_first_result,
    concurrent_writes_keep_sequences_gap_free,
);
