//! The table run against a real server: every RPC of each service, for every kind of caller,
//! with the state unchanged after every refused change.

use super::table::{CALLERS, Caller, Expect, Rpc, Service, table};
use crate::common::account_scope;
use crate::common::fixtures::mask;
use crate::common::{Backend, TestApp, spawn_app};
use std::sync::atomic::{AtomicU32, Ordering};
use telephony_admin::keys::{self, Role, Scope};
use telephony_admin::proto::{
    AcknowledgeSignOutRequest, AssignPhoneNumberRequest, CivicAddress, CreateAccountRequest,
    CreateEmergencyAddressRequest, CreateEmergencyLocationRequest, CreatePhoneNumberOrderRequest,
    CreateUserRequest, CreateWebhookRequest, DeleteAccountRequest, DeleteEmergencyAddressRequest,
    DeleteEmergencyLocationRequest, DeletePhoneNumberRequest, DeleteUserRequest,
    DeleteWebhookRequest, GetAccountRequest, GetCallerRequest, GetEmergencyAddressRequest,
    GetEmergencyLocationRequest, GetPhoneNumberOrderRequest, GetPhoneNumberRequest,
    GetTelephonySettingsRequest, GetUserRequest, GetWebhookRequest, LicenseType,
    ListAccountsRequest, ListChangesRequest, ListEmergencyAddressesRequest,
    ListEmergencyLocationsRequest, ListPhoneNumbersRequest, ListUsersRequest, ListWebhooksRequest,
    LogoutUserRequest, PhoneNumberProductType, RestorePhoneNumberRequest,
    RotateWebhookSecretRequest, SetEmergencyLocationRequest, TelephonySettings,
    UnassignPhoneNumberRequest, UpdateAccountRequest, UpdateEmergencyAddressRequest,
    UpdatePhoneNumberRequest, UpdateTelephonySettingsRequest, UpdateUserRequest,
    UpdateWebhookRequest, UserRef, WatchChangesRequest,
};
use tonic::Status;

impl Rpc {
    /// Creates, as the organisation admin, what the call needs to succeed when allowed.
    pub(crate) async fn prepare(self, bench: &Bench, account_id: &str) -> Target {
        use Rpc::*;
        let app = &bench.app;
        let mut target = Target {
            account_id: account_id.to_owned(),
            ..Target::default()
        };
        match self {
            CreateAccount
            | GetAccount
            | ListAccounts
            | UpdateAccount
            | DeleteAccount
            | GetCaller
            | CreateUser
            | ListPhoneNumbers
            | WatchChanges
            | ListChanges
            | CreateWebhook
            | ListWebhooks
            | BatchCreateUsers
            | ListPhoneNumberOrders
            | CreateEmergencyAddress
            | ListEmergencyAddresses
            | ListEmergencyLocations => {}
            GetEmergencyAddress
            | UpdateEmergencyAddress
            | DeleteEmergencyAddress
            | CreateEmergencyLocation => {
                target.address_id = emergency_address(app, account_id).await;
            }
            GetEmergencyLocation | DeleteEmergencyLocation => {
                target.address_id = emergency_address(app, account_id).await;
                target.location_id = emergency_location(app, &target.address_id).await;
            }
            SetEmergencyLocation => {
                target.user_id = app
                    .create_user(account_id, "target@example.com")
                    .await
                    .user_id;
                target.address_id = emergency_address(app, account_id).await;
                target.location_id = emergency_location(app, &target.address_id).await;
            }
            GetWebhook | UpdateWebhook | DeleteWebhook | RotateWebhookSecret => {
                target.webhook_id = app
                    .webhooks()
                    .create_webhook(webhook_request())
                    .await
                    .expect("create webhook")
                    .into_inner()
                    .webhook
                    .expect("the webhook")
                    .webhook_id;
            }
            GetUser | ListUsers | UpdateUser | DeleteUser | LogoutUser | GetTelephonySettings
            | BatchUpdateUsers => {
                target.user_id = app
                    .create_user(account_id, "target@example.com")
                    .await
                    .user_id;
            }
            CreatePhoneNumberOrder | ListPhoneNumberAssignments => {
                target.number = bench.fresh_number()
            }
            GetPhoneNumberOrder => {
                target.order_id = app
                    .order_business_numbers(&[bench.fresh_number()])
                    .await
                    .order_id;
            }
            UpdatePhoneNumber
            | DeletePhoneNumber
            | BatchUpdatePhoneNumbers
            | BatchDeletePhoneNumbers => {
                target.number = bench.fresh_number();
                app.order_business_numbers(&[target.number.clone()]).await;
            }
            RestorePhoneNumber => {
                target.number = bench.fresh_number();
                app.order_business_numbers(&[target.number.clone()]).await;
                app.numbers()
                    .delete_phone_number(DeletePhoneNumberRequest {
                        phone_number_id: target.number.clone(),
                    })
                    .await
                    .expect("delete the number to restore");
            }
            AssignPhoneNumber | BatchAssignPhoneNumbers => {
                target.user_id = app
                    .create_user(account_id, "target@example.com")
                    .await
                    .user_id;
                target.number = bench.fresh_number();
                app.order_business_numbers(&[target.number.clone()]).await;
            }
            AcknowledgeSignOut => {
                target.user_id = app
                    .create_user(account_id, "target@example.com")
                    .await
                    .user_id;
                target.sequence = app
                    .users()
                    .logout_user(LogoutUserRequest {
                        account_id: account_id.to_owned(),
                        user_id: target.user_id.clone(),
                    })
                    .await
                    .expect("a change to acknowledge")
                    .into_inner()
                    .sequence;
            }
            GetPhoneNumber
            | UnassignPhoneNumber
            | UpdateTelephonySettings
            | BatchUnassignPhoneNumbers
            | BatchUpdateTelephonySettings => {
                target.user_id = app
                    .create_user(account_id, "target@example.com")
                    .await
                    .user_id;
                target.number = bench.fresh_number();
                app.order_business_numbers(&[target.number.clone()]).await;
                app.assign(account_id, &target.user_id, &target.number)
                    .await
                    .expect("assign number");
            }
        }
        target
    }

    /// Makes the call with `key`; only the outcome matters here.
    pub(crate) async fn call(
        self,
        app: &TestApp,
        key: Option<&str>,
        t: &Target,
    ) -> Result<(), Status> {
        use Rpc::*;
        let account_id = t.account_id.clone();
        let user_id = t.user_id.clone();
        match self {
            CreateAccount => app
                .accounts_as(key)
                .create_account(CreateAccountRequest {
                    name: "Created".into(),
                })
                .await
                .map(drop),
            GetAccount => app
                .accounts_as(key)
                .get_account(GetAccountRequest { account_id })
                .await
                .map(drop),
            ListAccounts => app
                .accounts_as(key)
                .list_accounts(ListAccountsRequest::default())
                .await
                .map(drop),
            GetCaller => app
                .accounts_as(key)
                .get_caller(GetCallerRequest {})
                .await
                .map(drop),
            UpdateAccount => app
                .accounts_as(key)
                .update_account(UpdateAccountRequest {
                    account_id,
                    name: "Renamed".into(),
                })
                .await
                .map(drop),
            DeleteAccount => app
                .accounts_as(key)
                .delete_account(DeleteAccountRequest { account_id })
                .await
                .map(drop),
            CreateUser => app
                .users_as(key)
                .create_user(CreateUserRequest {
                    account_id,
                    email: "created@example.com".into(),
                    display_name: "Created".into(),
                    license_type: LicenseType::Basic as i32,
                    ..Default::default()
                })
                .await
                .map(drop),
            GetUser => app
                .users_as(key)
                .get_user(GetUserRequest {
                    account_id,
                    user_id,
                })
                .await
                .map(drop),
            ListUsers => app
                .users_as(key)
                .list_users(ListUsersRequest {
                    account_id,
                    ..Default::default()
                })
                .await
                .map(drop),
            UpdateUser => app
                .users_as(key)
                .update_user(UpdateUserRequest {
                    emergency_location_id: String::new(),
                    account_id,
                    user_id,
                    display_name: "Renamed".into(),
                    license_type: LicenseType::Plus as i32,
                    update_mask: None,
                })
                .await
                .map(drop),
            DeleteUser => app
                .users_as(key)
                .delete_user(DeleteUserRequest {
                    account_id,
                    user_id,
                })
                .await
                .map(drop),
            LogoutUser => app
                .users_as(key)
                .logout_user(LogoutUserRequest {
                    account_id,
                    user_id,
                })
                .await
                .map(drop),
            AcknowledgeSignOut => app
                .users_as(key)
                .acknowledge_sign_out(AcknowledgeSignOutRequest {
                    account_id,
                    user_id,
                    through_sequence: t.sequence,
                    request_id: String::new(),
                })
                .await
                .map(drop),
            CreatePhoneNumberOrder => app
                .numbers_as(key)
                .create_phone_number_order(CreatePhoneNumberOrderRequest {
                    product_type: PhoneNumberProductType::BusinessCalling as i32,
                    e164_phone_numbers: vec![t.number.clone()],
                })
                .await
                .map(drop),
            GetPhoneNumberOrder => app
                .numbers_as(key)
                .get_phone_number_order(GetPhoneNumberOrderRequest {
                    order_id: t.order_id.clone(),
                })
                .await
                .map(drop),
            GetPhoneNumber => app
                .numbers_as(key)
                .get_phone_number(GetPhoneNumberRequest {
                    phone_number_id: t.number.clone(),
                })
                .await
                .map(drop),
            ListPhoneNumbers => app
                .numbers_as(key)
                .list_phone_numbers(ListPhoneNumbersRequest {
                    account_id,
                    ..Default::default()
                })
                .await
                .map(drop),
            UpdatePhoneNumber => app
                .numbers_as(key)
                .update_phone_number(UpdatePhoneNumberRequest {
                    phone_number_id: t.number.clone(),
                    product_type: 0,
                    calling_name: "Front Desk".into(),
                    update_mask: Some(mask(&["calling_name"])),
                })
                .await
                .map(drop),
            DeletePhoneNumber => app
                .numbers_as(key)
                .delete_phone_number(DeletePhoneNumberRequest {
                    phone_number_id: t.number.clone(),
                })
                .await
                .map(drop),
            RestorePhoneNumber => app
                .numbers_as(key)
                .restore_phone_number(RestorePhoneNumberRequest {
                    phone_number_id: t.number.clone(),
                })
                .await
                .map(drop),
            AssignPhoneNumber => app
                .telephony_as(key)
                .assign_phone_number(AssignPhoneNumberRequest {
                    emergency_location_id: String::new(),
                    account_id,
                    user_id,
                    e164_phone_number: t.number.clone(),
                    request_id: String::new(),
                })
                .await
                .map(drop),
            UnassignPhoneNumber => app
                .telephony_as(key)
                .unassign_phone_number(UnassignPhoneNumberRequest {
                    account_id,
                    user_id,
                    confirm: true,
                    request_id: String::new(),
                })
                .await
                .map(drop),
            GetTelephonySettings => app
                .telephony_as(key)
                .get_telephony_settings(GetTelephonySettingsRequest {
                    account_id,
                    user_id,
                })
                .await
                .map(drop),
            UpdateTelephonySettings => app
                .telephony_as(key)
                .update_telephony_settings(UpdateTelephonySettingsRequest {
                    account_id,
                    user_id,
                    telephony_settings: Some(TelephonySettings {
                        inbound_calling: true,
                        outbound_calling: true,
                        sms: true,
                    }),
                    update_mask: None,
                    request_id: String::new(),
                })
                .await
                .map(drop),
            // The stream opening is the answer; it closes when dropped here.
            WatchChanges => app
                .changes_as(key)
                .watch_changes(WatchChangesRequest {
                    account_id,
                    ..Default::default()
                })
                .await
                .map(drop),
            ListChanges => app
                .changes_as(key)
                .list_changes(ListChangesRequest {
                    account_id,
                    ..Default::default()
                })
                .await
                .map(drop),
            CreateWebhook => app
                .webhooks_as(key)
                .create_webhook(webhook_request())
                .await
                .map(drop),
            GetWebhook => app
                .webhooks_as(key)
                .get_webhook(GetWebhookRequest {
                    webhook_id: t.webhook_id.clone(),
                })
                .await
                .map(drop),
            ListWebhooks => app
                .webhooks_as(key)
                .list_webhooks(ListWebhooksRequest::default())
                .await
                .map(drop),
            UpdateWebhook => app
                .webhooks_as(key)
                .update_webhook(UpdateWebhookRequest {
                    webhook_id: t.webhook_id.clone(),
                    description: "renamed".into(),
                    update_mask: Some(mask(&["description"])),
                    ..Default::default()
                })
                .await
                .map(drop),
            DeleteWebhook => app
                .webhooks_as(key)
                .delete_webhook(DeleteWebhookRequest {
                    webhook_id: t.webhook_id.clone(),
                })
                .await
                .map(drop),
            RotateWebhookSecret => app
                .webhooks_as(key)
                .rotate_webhook_secret(RotateWebhookSecretRequest {
                    webhook_id: t.webhook_id.clone(),
                })
                .await
                .map(drop),
            CreateEmergencyAddress => app
                .emergency_locations_as(key)
                .create_emergency_address(CreateEmergencyAddressRequest {
                    account_id: t.account_id.clone(),
                    address: Some(civic_address()),
                    ..Default::default()
                })
                .await
                .map(drop),
            GetEmergencyAddress => app
                .emergency_locations_as(key)
                .get_emergency_address(GetEmergencyAddressRequest {
                    address_id: t.address_id.clone(),
                })
                .await
                .map(drop),
            ListEmergencyAddresses => app
                .emergency_locations_as(key)
                .list_emergency_addresses(ListEmergencyAddressesRequest {
                    account_id: t.account_id.clone(),
                    ..Default::default()
                })
                .await
                .map(drop),
            UpdateEmergencyAddress => app
                .emergency_locations_as(key)
                .update_emergency_address(UpdateEmergencyAddressRequest {
                    address_id: t.address_id.clone(),
                    address: Some(civic_address()),
                })
                .await
                .map(drop),
            DeleteEmergencyAddress => app
                .emergency_locations_as(key)
                .delete_emergency_address(DeleteEmergencyAddressRequest {
                    address_id: t.address_id.clone(),
                })
                .await
                .map(drop),
            CreateEmergencyLocation => app
                .emergency_locations_as(key)
                .create_emergency_location(CreateEmergencyLocationRequest {
                    address_id: t.address_id.clone(),
                    place: "Floor 2".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
            GetEmergencyLocation => app
                .emergency_locations_as(key)
                .get_emergency_location(GetEmergencyLocationRequest {
                    location_id: t.location_id.clone(),
                })
                .await
                .map(drop),
            ListEmergencyLocations => app
                .emergency_locations_as(key)
                .list_emergency_locations(ListEmergencyLocationsRequest {
                    account_id: t.account_id.clone(),
                    ..Default::default()
                })
                .await
                .map(drop),
            DeleteEmergencyLocation => app
                .emergency_locations_as(key)
                .delete_emergency_location(DeleteEmergencyLocationRequest {
                    location_id: t.location_id.clone(),
                })
                .await
                .map(drop),
            SetEmergencyLocation => app
                .emergency_locations_as(key)
                .set_emergency_location(SetEmergencyLocationRequest {
                    target: Some(
                        telephony_admin::proto::set_emergency_location_request::Target::User(
                            UserRef {
                                account_id: t.account_id.clone(),
                                user_id: t.user_id.clone(),
                            },
                        ),
                    ),
                    location_id: t.location_id.clone(),
                })
                .await
                .map(drop),
            BatchCreateUsers
            | BatchUpdateUsers
            | BatchUpdatePhoneNumbers
            | BatchDeletePhoneNumbers
            | BatchAssignPhoneNumbers
            | BatchUnassignPhoneNumbers
            | BatchUpdateTelephonySettings => super::batch_calls::call(self, app, key, t).await,
            ListPhoneNumberOrders => app
                .numbers_as(key)
                .list_phone_number_orders(
                    telephony_admin::proto::ListPhoneNumberOrdersRequest::default(),
                )
                .await
                .map(drop),
            ListPhoneNumberAssignments => app
                .numbers_as(key)
                .list_phone_number_assignments(
                    telephony_admin::proto::ListPhoneNumberAssignmentsRequest {
                        phone_number_id: t.number.clone(),
                        ..Default::default()
                    },
                )
                .await
                .map(drop),
        }
    }
}

fn civic_address() -> CivicAddress {
    CivicAddress {
        country: "US".into(),
        house_number: "1".into(),
        street_name: "Main".into(),
        city: "Springfield".into(),
        state_or_province: "IL".into(),
        postal_code: "62701".into(),
        ..Default::default()
    }
}

/// An emergency address of the account, made by the organisation admin: its id.
async fn emergency_address(app: &TestApp, account_id: &str) -> String {
    app.emergency_locations()
        .create_emergency_address(CreateEmergencyAddressRequest {
            account_id: account_id.to_owned(),
            address: Some(civic_address()),
            ..Default::default()
        })
        .await
        .expect("create an emergency address")
        .into_inner()
        .address_id
}

/// A location on the address, made by the organisation admin: its id.
async fn emergency_location(app: &TestApp, address_id: &str) -> String {
    app.emergency_locations()
        .create_emergency_location(CreateEmergencyLocationRequest {
            address_id: address_id.to_owned(),
            place: "Floor 1".into(),
            ..Default::default()
        })
        .await
        .expect("create an emergency location")
        .into_inner()
        .location_id
}

/// A webhook the default policy accepts without a name lookup: https, a public address.
fn webhook_request() -> CreateWebhookRequest {
    CreateWebhookRequest {
        url: "https://192.0.43.10/hooks".into(),
        description: "access control".into(),
        filter: None,
    }
}

/// What a call acts on; which fields matter depends on the RPC.
#[derive(Debug, Default)]
pub(crate) struct Target {
    pub(super) account_id: String,
    pub(super) user_id: String,
    /// A change event of the user (to acknowledge).
    pub(super) sequence: u64,
    pub(super) number: String,
    pub(super) order_id: String,
    pub(super) webhook_id: String,
    pub(super) address_id: String,
    pub(super) location_id: String,
}

/// A server with the keys every case shares.
pub(crate) struct Bench {
    pub(crate) app: TestApp,
    org_viewer: String,
    /// A key that worked and was then revoked.
    revoked: String,
    next_number: AtomicU32,
}

impl Bench {
    pub(crate) async fn start(backend: Backend) -> Self {
        let app = spawn_app(backend).await;
        let org_viewer = app.create_key(Role::Viewer, Scope::Organisation).await;
        let revoked = revoked_key(&app).await;
        Self {
            app,
            org_viewer,
            revoked,
            next_number: AtomicU32::new(0),
        }
    }

    /// A valid US number not used before in this test.
    fn fresh_number(&self) -> String {
        let n = self.next_number.fetch_add(1, Ordering::Relaxed);
        assert!(n < 10_000, "out of test numbers");
        format!("+1206555{n:04}")
    }

    /// The secret `caller` sends, for a case whose own account is `own`.
    async fn key_for(&self, caller: Caller, own: &str) -> Option<String> {
        let account = || account_scope(own);
        match caller {
            Caller::NoKey => None,
            Caller::BadKey => Some(keys::generate_secret()),
            Caller::RevokedKey => Some(self.revoked.clone()),
            Caller::OrgAdmin => Some(self.app.admin_key.clone()),
            Caller::OrgViewer => Some(self.org_viewer.clone()),
            Caller::AccountAdminOwn | Caller::AccountAdminOther => {
                Some(self.app.create_key(Role::Admin, account()).await)
            }
            Caller::AccountViewerOwn | Caller::AccountViewerOther => {
                Some(self.app.create_key(Role::Viewer, account()).await)
            }
        }
    }
}

/// A key that is first shown to work, then revoked, and seen refused.
async fn revoked_key(app: &TestApp) -> String {
    let (record, secret) = keys::create_key(
        &app.store,
        "soon revoked",
        Role::Admin,
        &Scope::Organisation,
        None,
    )
    .await
    .expect("create key");
    app.accounts_as(Some(&secret))
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("the key works before it is revoked");
    app.store
        .keys()
        .revoke(&record.id)
        .await
        .expect("revoke key");
    app.wait_until_refused(&secret).await;
    secret
}

/// Runs every row of `service` for every caller; collects all mismatches before failing.
async fn run_table(backend: Backend, service: Service) {
    let bench = Bench::start(backend).await;
    let app = &bench.app;
    let mut failures = Vec::new();
    let mut cases = 0;
    for row in table().iter().filter(|r| r.rpc.service() == service) {
        for caller in CALLERS {
            cases += 1;
            let own = app.create_account("Own").await.account_id;
            let other = app.create_account("Other").await.account_id;
            let key = bench.key_for(caller, &own).await;
            let target_account = if caller.targets_other_account() {
                &other
            } else {
                &own
            };
            let target = row.rpc.prepare(&bench, target_account).await;
            let expect = row.expectation(caller);
            let check_unchanged = row.mutates && expect != Expect::Allow;
            let before = if check_unchanged {
                Some(app.snapshot(&[&own, &other]).await)
            } else {
                None
            };
            let outcome = row.rpc.call(app, key.as_deref(), &target).await;
            let case = format!("{} as {caller:?}", row.rpc.full_name());
            match (&outcome, expect) {
                (Ok(()), Expect::Allow) => {}
                (Ok(()), _) => failures.push(format!("{case}: allowed, expected {expect:?}")),
                (Err(status), Expect::Allow) => {
                    failures.push(format!("{case}: refused with {status:?}, expected OK"))
                }
                (Err(status), _) => {
                    if status.code() != expect.code()
                        || !status.message().contains(expect.message_fragment())
                    {
                        failures.push(format!(
                            "{case}: got {:?} {:?}, expected {:?} with {:?}",
                            status.code(),
                            status.message(),
                            expect.code(),
                            expect.message_fragment()
                        ));
                    }
                }
            }
            if let Some(before) = before {
                let after = app.snapshot(&[&own, &other]).await;
                if before != after {
                    failures.push(format!(
                        "{case}: refused, but the state changed:\nbefore: {before:#?}\nafter: {after:#?}"
                    ));
                }
            }
        }
    }
    assert!(cases > 0, "no rows for {service:?}");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

async fn account_service_access(backend: Backend) {
    run_table(backend, Service::Account).await;
}

async fn user_service_access(backend: Backend) {
    run_table(backend, Service::User).await;
}

async fn phone_number_service_access(backend: Backend) {
    run_table(backend, Service::PhoneNumber).await;
}

async fn telephony_service_access(backend: Backend) {
    run_table(backend, Service::Telephony).await;
}

async fn change_service_access(backend: Backend) {
    run_table(backend, Service::Change).await;
}

async fn webhook_service_access(backend: Backend) {
    run_table(backend, Service::Webhook).await;
}

async fn emergency_location_service_access(backend: Backend) {
    run_table(backend, Service::EmergencyLocation).await;
}

on_both_databases!(
    account_service_access,
    user_service_access,
    phone_number_service_access,
    telephony_service_access,
    change_service_access,
    webhook_service_access,
    emergency_location_service_access,
);
