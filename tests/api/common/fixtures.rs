//! Set-up and read-back helpers shared by the scenario files. Everything goes through the public
//! API as the organisation admin unless a client or key is passed in; set-up steps panic on
//! failure, while the `try_` forms and the calls whose refusal tests look at return the status.

use prost_types::FieldMask;
use std::time::{Duration, Instant};
use telephony_admin::proto::{
    Account, AssignPhoneNumberRequest, ChangeEvent, CreateAccountRequest,
    CreatePhoneNumberOrderRequest, CreateUserRequest, GetPhoneNumberRequest, GetUserRequest,
    LicenseType, ListAccountsRequest, ListChangesRequest, ListPhoneNumbersRequest,
    ListUsersRequest, PhoneNumber, PhoneNumberOrder, PhoneNumberOrderStatus,
    PhoneNumberProductType, TelephonySettings, UnassignPhoneNumberRequest,
    UpdateTelephonySettingsRequest, User, telephony_service_client::TelephonyServiceClient,
};

use tonic::{Code, Status};

use super::{Authed, TestApp};

/// How long a test waits for a revocation made through another store or process to reach a
/// server. The service promises 1 s; a loaded test machine gets generous slack.
pub const REVOCATION_WAIT: Duration = Duration::from_secs(10);

/// A well-formed UUID that names nothing.
pub const UNKNOWN_ID: &str = "0190a5b2-7c4e-7d1a-9b3f-2a6c8e4d1f00";

/// `+1 206 555 01nn`, a valid US local number for nn in 00..=99.
pub fn number(nn: usize) -> String {
    assert!(nn < 100);
    format!("+120655501{nn:02}")
}

pub fn mask(paths: &[&str]) -> FieldMask {
    FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    }
}

/// A valid CreateUser request, for tests to vary one field of.
pub fn new_user(account_id: &str, email: &str) -> CreateUserRequest {
    CreateUserRequest {
        account_id: account_id.into(),
        email: email.into(),
        display_name: "Test User".into(),
        license_type: LicenseType::Basic as i32,
        ..Default::default()
    }
}

/// Assigns `number` through `client` (a task's own, or one with another key); `request_id` may be
/// empty.
pub async fn assign_via(
    client: &mut TelephonyServiceClient<Authed>,
    account_id: &str,
    user_id: &str,
    number: &str,
    request_id: &str,
) -> Result<User, Status> {
    client
        .assign_phone_number(AssignPhoneNumberRequest {
            emergency_location_id: String::new(),
            account_id: account_id.into(),
            user_id: user_id.into(),
            e164_phone_number: number.into(),
            request_id: request_id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

pub async fn unassign_via(
    client: &mut TelephonyServiceClient<Authed>,
    account_id: &str,
    user_id: &str,
    confirm: bool,
    request_id: &str,
) -> Result<User, Status> {
    client
        .unassign_phone_number(UnassignPhoneNumberRequest {
            account_id: account_id.into(),
            user_id: user_id.into(),
            confirm,
            request_id: request_id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

/// Updates the settings named by `paths` (none: all of them).
pub async fn update_settings_via(
    client: &mut TelephonyServiceClient<Authed>,
    account_id: &str,
    user_id: &str,
    wanted: TelephonySettings,
    paths: &[&str],
    request_id: &str,
) -> Result<TelephonySettings, Status> {
    client
        .update_telephony_settings(UpdateTelephonySettingsRequest {
            account_id: account_id.into(),
            user_id: user_id.into(),
            telephony_settings: Some(wanted),
            update_mask: Some(mask(paths)),
            request_id: request_id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

impl TestApp {
    /// Polls until `secret` is refused with UNAUTHENTICATED; panics if it still works after
    /// [`REVOCATION_WAIT`].
    pub async fn wait_until_refused(&self, secret: &str) {
        let deadline = Instant::now() + REVOCATION_WAIT;
        loop {
            match self
                .accounts_as(Some(secret))
                .list_accounts(ListAccountsRequest::default())
                .await
            {
                Err(status) if status.code() == Code::Unauthenticated => return,
                Err(status) => panic!("unexpected refusal of a revoked key: {status:?}"),
                Ok(_) => {
                    assert!(
                        Instant::now() < deadline,
                        "the revoked key still works after {REVOCATION_WAIT:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    pub async fn create_account(&self, name: &str) -> Account {
        self.accounts()
            .create_account(CreateAccountRequest { name: name.into() })
            .await
            .unwrap_or_else(|s| panic!("create account {name:?}: {s:?}"))
            .into_inner()
    }

    pub async fn try_create_user(&self, request: CreateUserRequest) -> Result<User, Status> {
        self.users()
            .create_user(request)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn create_user(&self, account_id: &str, email: &str) -> User {
        self.try_create_user(new_user(account_id, email))
            .await
            .unwrap_or_else(|s| panic!("create user {email}: {s:?}"))
    }

    /// Puts BUSINESS_CALLING numbers into the inventory; every one of them must be acquired.
    pub async fn order_business_numbers(&self, numbers: &[impl AsRef<str>]) -> PhoneNumberOrder {
        let numbers: Vec<String> = numbers.iter().map(|n| n.as_ref().to_owned()).collect();
        let order = self
            .numbers()
            .create_phone_number_order(CreatePhoneNumberOrderRequest {
                product_type: PhoneNumberProductType::BusinessCalling as i32,
                e164_phone_numbers: numbers.clone(),
            })
            .await
            .unwrap_or_else(|s| panic!("order {numbers:?}: {s:?}"))
            .into_inner();
        assert_eq!(
            order.status,
            PhoneNumberOrderStatus::Successful as i32,
            "every number of the set-up order is acquired: {order:?}"
        );
        order
    }

    pub async fn assign(
        &self,
        account_id: &str,
        user_id: &str,
        number: &str,
    ) -> Result<User, Status> {
        assign_via(&mut self.telephony(), account_id, user_id, number, "").await
    }

    pub async fn unassign(
        &self,
        account_id: &str,
        user_id: &str,
        confirm: bool,
    ) -> Result<User, Status> {
        unassign_via(&mut self.telephony(), account_id, user_id, confirm, "").await
    }

    pub async fn update_settings(
        &self,
        account_id: &str,
        user_id: &str,
        wanted: TelephonySettings,
        paths: &[&str],
    ) -> Result<TelephonySettings, Status> {
        update_settings_via(
            &mut self.telephony(),
            account_id,
            user_id,
            wanted,
            paths,
            "",
        )
        .await
    }

    pub async fn try_get_user(&self, account_id: &str, user_id: &str) -> Result<User, Status> {
        self.users()
            .get_user(GetUserRequest {
                account_id: account_id.into(),
                user_id: user_id.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn get_user(&self, account_id: &str, user_id: &str) -> User {
        self.try_get_user(account_id, user_id)
            .await
            .unwrap_or_else(|s| panic!("get user {user_id}: {s:?}"))
    }

    /// Reads a number by id, which may be any formatting of its E.164 form.
    pub async fn try_get_number(&self, id: &str) -> Result<PhoneNumber, Status> {
        self.numbers()
            .get_phone_number(GetPhoneNumberRequest {
                phone_number_id: id.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn get_number(&self, id: &str) -> PhoneNumber {
        self.try_get_number(id)
            .await
            .unwrap_or_else(|s| panic!("get phone number {id}: {s:?}"))
    }

    /// Every account, following page tokens.
    pub async fn all_accounts(&self) -> Vec<Account> {
        let mut accounts = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .accounts()
                .list_accounts(ListAccountsRequest {
                    page_size: 1000,
                    page_token,
                    name_prefix: String::new(),
                })
                .await
                .unwrap_or_else(|s| panic!("list accounts: {s:?}"))
                .into_inner();
            accounts.extend(page.accounts);
            if page.next_page_token.is_empty() {
                return accounts;
            }
            page_token = page.next_page_token;
        }
    }

    /// Every user of the account, following page tokens.
    pub async fn all_users(&self, account_id: &str) -> Vec<User> {
        let mut users = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .users()
                .list_users(ListUsersRequest {
                    account_id: account_id.into(),
                    page_size: 1000,
                    page_token,
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|s| panic!("list users of {account_id}: {s:?}"))
                .into_inner();
            users.extend(page.users);
            if page.next_page_token.is_empty() {
                return users;
            }
            page_token = page.next_page_token;
        }
    }

    /// Every number matching the filters of `filter` (its page fields are ignored), following
    /// page tokens.
    pub async fn all_numbers(&self, filter: ListPhoneNumbersRequest) -> Vec<PhoneNumber> {
        let mut numbers = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .numbers()
                .list_phone_numbers(ListPhoneNumbersRequest {
                    page_size: 1000,
                    page_token,
                    ..filter.clone()
                })
                .await
                .unwrap_or_else(|s| panic!("list phone numbers: {s:?}"))
                .into_inner();
            numbers.extend(page.phone_numbers);
            if page.next_page_token.is_empty() {
                return numbers;
            }
            page_token = page.next_page_token;
        }
    }

    /// Every retained change event of the account and user (empty: any), following page tokens.
    pub async fn all_changes(&self, account_id: &str, user_id: &str) -> Vec<ChangeEvent> {
        let filter = ListChangesRequest {
            account_id: account_id.into(),
            user_id: user_id.into(),
            ..Default::default()
        };
        self.all_changes_as(&self.admin_key, filter).await
    }

    /// Every retained event `key` may see that matches the filters of `filter` (its page fields
    /// are ignored), following page tokens.
    pub async fn all_changes_as(&self, key: &str, filter: ListChangesRequest) -> Vec<ChangeEvent> {
        let mut events = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .changes_as(Some(key))
                .list_changes(ListChangesRequest {
                    page_size: 1000,
                    page_token,
                    ..filter.clone()
                })
                .await
                .unwrap_or_else(|s| panic!("list changes: {s:?}"))
                .into_inner();
            events.extend(page.events);
            if page.next_page_token.is_empty() {
                return events;
            }
            page_token = page.next_page_token;
        }
    }

    /// Every account, number and change event, and the users of `accounts`: what a refused
    /// request must leave as it was.
    pub async fn snapshot(&self, accounts: &[&str]) -> Snapshot {
        let mut users = Vec::new();
        for account_id in accounts {
            users.extend(self.all_users(account_id).await);
        }
        Snapshot {
            accounts: self.all_accounts().await,
            users,
            numbers: self.all_numbers(ListPhoneNumbersRequest::default()).await,
            changes: self.all_changes("", "").await,
        }
    }
}

/// The state as the organisation admin sees it, from [`TestApp::snapshot`].
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub accounts: Vec<Account>,
    pub users: Vec<User>,
    pub numbers: Vec<PhoneNumber>,
    pub changes: Vec<ChangeEvent>,
}

/// Seconds since the Unix epoch, to compare with protobuf timestamps.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}
