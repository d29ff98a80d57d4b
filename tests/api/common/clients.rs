//! Typed clients on any channel (an in-process server, a server process, a replica) with one
//! key, and the set-up and read-back steps the tests that restart or replace servers share.

use std::time::Duration;

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
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::fixtures::new_user;
use super::process::TestProcess;
use super::{Authed, Bearer};

/// How long one call may take before a test counts it as unanswered.
pub const CALL: Duration = Duration::from_secs(10);

/// Clients for `channel`, each carrying `key`.
#[derive(Clone)]
pub struct Clients {
    pub channel: Channel,
    /// The key every client carries.
    pub key: String,
}

impl Clients {
    /// Clients of a server process, with its bootstrap key.
    pub fn of(process: &TestProcess) -> Self {
        Self {
            channel: process.channel.clone(),
            key: process.admin_key.clone(),
        }
    }

    fn bearer(&self) -> Bearer {
        Bearer(Some(format!("Bearer {}", self.key).parse().unwrap()))
    }
    pub fn accounts(&self) -> AccountServiceClient<Authed> {
        AccountServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    pub fn users(&self) -> UserServiceClient<Authed> {
        UserServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    pub fn numbers(&self) -> PhoneNumberServiceClient<Authed> {
        PhoneNumberServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    pub fn telephony(&self) -> TelephonyServiceClient<Authed> {
        TelephonyServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }
    pub fn changes(&self) -> ChangeServiceClient<Authed> {
        ChangeServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }

    pub async fn health(&self) -> Option<ServingStatus> {
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
    pub async fn set_up(&self, users: usize, numbers: usize) -> (String, Vec<String>, Vec<String>) {
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

    pub async fn logout(&self, account: &str, user: &str) -> Result<u64, Status> {
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
    pub async fn all_changes(&self) -> Vec<ChangeEvent> {
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
