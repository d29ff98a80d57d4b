//! SIGKILL under load: the real binary is killed at a random moment while workers change users,
//! restarted, and checked, again and again.

use super::assert_gap_free;
use crate::common::clients::{CALL, Clients};
use crate::common::process::ServerCommand;
use crate::common::{Backend, TestDatabase};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use telephony_admin::proto::{
    AssignPhoneNumberRequest, ChangeKind, GetUserRequest, ListPhoneNumbersRequest,
    LogoutUserRequest, PhoneNumberStatus, TelephonySettings, UnassignPhoneNumberRequest,
    UpdateTelephonySettingsRequest,
};
use tokio::time::timeout;
use tonic::{Code, Status};

// Each kill cuts off one change per user in flight, each checked after the restart: 10 kills of
// 12 users judge as many cut-off changes as 20 kills of 6 would, with half the restarts (which
// take most of the time). Three users to two numbers, as before, keep the same contention.
const CRASHES: usize = 10;
const CRASH_USERS: usize = 12;
const CRASH_NUMBERS: usize = 8;

/// What one user's worker knows: the changes acknowledged in order (as event kinds), the one
/// in flight when the server died (it may or may not have committed), and the sequences of the
/// acknowledged sign-outs.
#[derive(Debug, Default)]
struct UserLog {
    applied: Vec<i32>,
    pending: Option<i32>,
    sign_outs: Vec<u64>,
}

enum Outcome {
    Applied(i32),
    Refused,
    Unknown(i32),
}

fn outcome<T>(
    kind: ChangeKind,
    answer: Result<Result<T, Status>, tokio::time::error::Elapsed>,
) -> (Outcome, Option<T>) {
    match answer {
        Ok(Ok(value)) => (Outcome::Applied(kind as i32), Some(value)),
        // Refused by a rule or a lost race: rolled back, nothing written.
        Ok(Err(status))
            if matches!(
                status.code(),
                Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted | Code::NotFound
            ) =>
        {
            (Outcome::Refused, None)
        }
        _ => (Outcome::Unknown(kind as i32), None),
    }
}

/// Changes one user until the server stops answering.
async fn crash_worker(
    clients: Clients,
    account: String,
    user: String,
    numbers: Arc<Vec<String>>,
    log: &mut UserLog,
    mut step: usize,
    acknowledged: Arc<AtomicUsize>,
) {
    let Ok(Ok(current)) = timeout(
        CALL,
        clients.users().get_user(GetUserRequest {
            account_id: account.clone(),
            user_id: user.clone(),
        }),
    )
    .await
    else {
        return;
    };
    let current = current.into_inner();
    let mut holds = !current.primary_phone_number.is_empty();
    let mut sms = current.telephony_settings.is_some_and(|s| s.sms);
    let mut telephony = clients.telephony();
    loop {
        step += 1;
        let result = match step % 3 {
            0 if !holds => {
                let number = numbers[rand::random_range(0..numbers.len())].clone();
                let answer = timeout(
                    CALL,
                    telephony.assign_phone_number(AssignPhoneNumberRequest {
                        emergency_location_id: String::new(),
                        account_id: account.clone(),
                        user_id: user.clone(),
                        e164_phone_number: number,
                        request_id: String::new(),
                    }),
                )
                .await;
                let (result, done) = outcome(ChangeKind::PhoneNumberAssigned, answer);
                if let Some(user) = done {
                    // Assignment resets the settings.
                    let user = user.into_inner();
                    holds = true;
                    sms = user.telephony_settings.is_some_and(|s| s.sms);
                }
                result
            }
            0 => {
                let answer = timeout(
                    CALL,
                    telephony.unassign_phone_number(UnassignPhoneNumberRequest {
                        account_id: account.clone(),
                        user_id: user.clone(),
                        confirm: true,
                        request_id: String::new(),
                    }),
                )
                .await;
                let (result, done) = outcome(ChangeKind::PhoneNumberUnassigned, answer);
                if let Some(user) = done {
                    let user = user.into_inner();
                    holds = false;
                    sms = user.telephony_settings.is_some_and(|s| s.sms);
                }
                result
            }
            1 => {
                let answer = timeout(
                    CALL,
                    telephony.update_telephony_settings(UpdateTelephonySettingsRequest {
                        account_id: account.clone(),
                        user_id: user.clone(),
                        telephony_settings: Some(TelephonySettings {
                            inbound_calling: true,
                            outbound_calling: true,
                            sms: !sms,
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["sms".into()],
                        }),
                        request_id: String::new(),
                    }),
                )
                .await;
                let (result, done) = outcome(ChangeKind::TelephonySettingsUpdated, answer);
                if let Some(settings) = done {
                    sms = settings.into_inner().sms;
                }
                result
            }
            _ => {
                let answer = timeout(
                    CALL,
                    clients.users().logout_user(LogoutUserRequest {
                        account_id: account.clone(),
                        user_id: user.clone(),
                    }),
                )
                .await;
                let (result, done) = outcome(ChangeKind::UserSignOutRequested, answer);
                if let Some(done) = done {
                    log.sign_outs.push(done.into_inner().sequence);
                }
                result
            }
        };
        match result {
            Outcome::Applied(kind) => {
                log.applied.push(kind);
                acknowledged.fetch_add(1, Ordering::SeqCst);
            }
            Outcome::Refused => {}
            Outcome::Unknown(kind) => {
                log.pending = Some(kind);
                return;
            }
        }
    }
}

/// After a restart: every acknowledged change is there with its event, the log has no gap, and
/// no number or user is assigned twice (and the state agrees with the log).
async fn check_after_crash(
    clients: &Clients,
    account: &str,
    users: &[String],
    logs: &mut [UserLog],
) {
    let events = clients.all_changes().await;
    assert_gap_free(&events);
    for (user, log) in users.iter().zip(logs.iter_mut()) {
        let kinds: Vec<i32> = events
            .iter()
            .filter(|e| &e.user_id == user)
            .map(|e| e.kind)
            .collect();
        // The change in flight at the kill either committed (with its event) or left nothing.
        if let Some(pending) = log.pending.take()
            && kinds.len() == log.applied.len() + 1
            && kinds.last() == Some(&pending)
        {
            log.applied.push(pending);
        }
        assert_eq!(
            kinds, log.applied,
            "user {user}: the events are exactly the acknowledged changes (and perhaps the one in flight)"
        );
        for sequence in &log.sign_outs {
            let event = &events[*sequence as usize - 1];
            assert_eq!(&event.user_id, user);
            assert_eq!(event.kind, ChangeKind::UserSignOutRequested as i32);
        }
    }
    // The holder of each number, from the log and from the state.
    let mut from_log: HashMap<&str, &str> = HashMap::new();
    for event in &events {
        if event.kind == ChangeKind::PhoneNumberAssigned as i32 {
            assert!(
                from_log
                    .insert(&event.user_id, &event.e164_phone_number)
                    .is_none(),
                "a user was assigned a second number: {event:?}"
            );
        } else if event.kind == ChangeKind::PhoneNumberUnassigned as i32 {
            from_log.remove(event.user_id.as_str());
        }
    }
    let numbers = clients
        .numbers()
        .list_phone_numbers(ListPhoneNumbersRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .phone_numbers;
    let mut holders: HashMap<String, String> = HashMap::new();
    for number in numbers {
        if number.status == PhoneNumberStatus::Assigned as i32 {
            let holder = number
                .association
                .expect("an assigned number names its user")
                .user_id;
            assert!(
                holders
                    .insert(holder.clone(), number.e164_phone_number.clone())
                    .is_none(),
                "user {holder} holds two numbers"
            );
        }
    }
    let mut held: Vec<&String> = holders.values().collect();
    held.sort();
    held.dedup();
    assert_eq!(held.len(), holders.len(), "no number has two users");
    for user in users {
        let state = clients
            .users()
            .get_user(GetUserRequest {
                account_id: account.into(),
                user_id: user.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let expected = holders.get(user).map(String::as_str).unwrap_or("");
        assert_eq!(state.primary_phone_number, expected, "user {user}");
        assert_eq!(
            from_log.get(user.as_str()).copied().unwrap_or(""),
            expected,
            "user {user}: the log and the state agree"
        );
    }
}

async fn sigkill_under_load_loses_nothing_acknowledged(backend: Backend) {
    let started = Instant::now();
    let database = TestDatabase::create(backend).await;
    let key = telephony_admin::keys::generate_secret();
    let server = ServerCommand::new().key(&key);
    let mut process = server.clone().start_on(&database.url).await;
    let mut clients = Clients::of(&process);
    let (account, users, numbers) = clients.set_up(CRASH_USERS, CRASH_NUMBERS).await;
    let numbers = Arc::new(numbers);
    let mut logs: Vec<UserLog> = (0..CRASH_USERS).map(|_| UserLog::default()).collect();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    for crash in 0..CRASHES {
        // The workers borrow the logs until they have all stopped.
        {
            let workers = users
                .iter()
                .zip(logs.iter_mut())
                .enumerate()
                .map(|(i, (user, log))| {
                    crash_worker(
                        clients.clone(),
                        account.clone(),
                        user.clone(),
                        numbers.clone(),
                        log,
                        i + crash,
                        acknowledged.clone(),
                    )
                });
            let load = futures::future::join_all(workers);
            tokio::pin!(load);
            // Kill at a random moment once the load is under way (a loaded machine may take a
            // while to get there).
            let before = acknowledged.load(Ordering::SeqCst);
            let under_way = async {
                while acknowledged.load(Ordering::SeqCst) < before + CRASH_USERS {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                tokio::time::sleep(Duration::from_millis(rand::random_range(0..300))).await;
            };
            tokio::select! {
                _ = &mut load => panic!("the workers stopped while the server was up"),
                _ = timeout(Duration::from_secs(60), under_way) => {}
            }
            process.kill();
            timeout(Duration::from_secs(60), load)
                .await
                .expect("every worker notices the crash");
        }
        process = server.clone().start_on(&database.url).await;
        clients = Clients::of(&process);
        check_after_crash(&clients, &account, &users, &mut logs).await;
    }
    let acknowledged: usize = logs.iter().map(|l| l.applied.len()).sum();
    assert!(
        acknowledged >= CRASHES * CRASH_USERS,
        "the load made changes: {acknowledged}"
    );
    eprintln!(
        "{backend:?}: {CRASHES} SIGKILLs and restarts, {acknowledged} changes checked, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

on_both_databases!(sigkill_under_load_loses_nothing_acknowledged,);
