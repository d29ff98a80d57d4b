//! Faults the service must survive without losing what it acknowledged:
//!
//! - the real binary killed with SIGKILL under concurrent load and restarted, again and again;
//! - its PostgreSQL server stopped and started again under load (a private instance);
//! - the disk under its SQLite database running full (a small tmpfs).
//!
//! The last two need root (a mount; `initdb` as the `postgres` user). CI runs as root, and there
//! they must run; elsewhere they are skipped with a printed reason. This module holds what they
//! share: clients on any channel, the checks of the change log, and the skip rule.

use crate::common::fixtures::new_user;
use crate::common::process::TestProcess;
use crate::common::{Authed, Bearer};
use std::process::Command;
use std::time::{Duration, Instant};
use telephony_admin::proto::{
    ChangeEvent, CreateAccountRequest, CreatePhoneNumberOrderRequest, ListChangesRequest,
    LogoutUserRequest, PhoneNumberOrderStatus, PhoneNumberProductType,
    account_service_client::AccountServiceClient, change_service_client::ChangeServiceClient,
    phone_number_service_client::PhoneNumberServiceClient,
    telephony_service_client::TelephonyServiceClient, user_service_client::UserServiceClient,
};
use tokio::time::timeout;
use tonic::Status;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

mod crash;
mod database_restart;
mod disk_full;

const CALL: Duration = Duration::from_secs(10);

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `None` when the fault can be staged here; else why not. Under CI, a missing prerequisite fails.
fn skip_unless(prerequisite: bool, why: &str) -> bool {
    if prerequisite {
        return false;
    }
    assert!(!is_ci(), "CI must run this fault test, but {why}");
    eprintln!("SKIPPED: {why}");
    true
}

#[derive(Clone)]
struct Clients {
    channel: Channel,
    key: String,
}

impl Clients {
    fn of(process: &TestProcess) -> Self {
        Self {
            channel: process.channel.clone(),
            key: process.admin_key.clone(),
        }
    }

    fn bearer(&self) -> Bearer {
        Bearer(Some(format!("Bearer {}", self.key).parse().unwrap()))
    }
    fn accounts(&self) -> AccountServiceClient<Authed> {
        AccountServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    fn users(&self) -> UserServiceClient<Authed> {
        UserServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    fn numbers(&self) -> PhoneNumberServiceClient<Authed> {
        PhoneNumberServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    fn telephony(&self) -> TelephonyServiceClient<Authed> {
        TelephonyServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    fn changes(&self) -> ChangeServiceClient<Authed> {
        ChangeServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }

    async fn health(&self) -> Option<ServingStatus> {
        let answer = timeout(
            CALL,
            HealthClient::new(self.channel.clone()).check(HealthCheckRequest {
                service: String::new(),
            }),
        )
        .await
        .ok()?
        .ok()?;
        ServingStatus::try_from(answer.into_inner().status).ok()
    }

    /// An account, `users` users and `numbers` BUSINESS_CALLING numbers in stock.
    async fn set_up(&self, users: usize, numbers: usize) -> (String, Vec<String>, Vec<String>) {
        let account = self
            .accounts()
            .create_account(CreateAccountRequest {
                name: "Acme".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .account_id;
        let numbers: Vec<String> = (0..numbers)
            .map(|i| format!("+120655501{:02}", 60 + i))
            .collect();
        if !numbers.is_empty() {
            let order = self
                .numbers()
                .create_phone_number_order(CreatePhoneNumberOrderRequest {
                    product_type: PhoneNumberProductType::BusinessCalling as i32,
                    e164_phone_numbers: numbers.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(order.status, PhoneNumberOrderStatus::Successful as i32);
        }
        let mut ids = Vec::new();
        for i in 0..users {
            ids.push(
                self.users()
                    .create_user(new_user(&account, &format!("user{i}@example.com")))
                    .await
                    .unwrap()
                    .into_inner()
                    .user_id,
            );
        }
        (account, ids, numbers)
    }

    async fn logout(&self, account: &str, user: &str) -> Result<u64, Status> {
        let mut users = self.users();
        let call = users.logout_user(LogoutUserRequest {
            account_id: account.into(),
            user_id: user.into(),
        });
        match timeout(CALL, call).await {
            Ok(answer) => answer.map(|r| r.into_inner().sequence),
            Err(_) => Err(Status::deadline_exceeded("no answer in time")),
        }
    }

    /// The whole change log, in order.
    async fn all_changes(&self) -> Vec<ChangeEvent> {
        let mut events = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .changes()
                .list_changes(ListChangesRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                    ..Default::default()
                })
                .await
                .expect("list changes")
                .into_inner();
            events.extend(page.events);
            if page.next_page_token.is_empty() {
                return events;
            }
            page_token = page.next_page_token;
        }
    }
}

fn assert_gap_free(events: &[ChangeEvent]) {
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event.sequence,
            i as u64 + 1,
            "the change log has no gap (event {i} of {})",
            events.len()
        );
    }
}

async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
