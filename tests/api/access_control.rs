//! Who may call what: every RPC against every kind of caller (no key, a bad key, a revoked key,
//! organisation and account-scoped admins and viewers, inside and outside their account), that a
//! refused change leaves no trace, that refusals do not reveal whether a target exists, that change
//! events name the key that made them, that health and reflection need no key, and the `keys`
//! command of the real binary.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::fixtures::{REVOCATION_WAIT, UNKNOWN_ID, assign_via, mask};
use crate::common::{Backend, Bearer, TestApp, TestDatabase, spawn_app};
use prost::Message;
use telephony_admin::keys::{self, Role, Scope};
use telephony_admin::proto::{
    self, Account, AssignPhoneNumberRequest, ChangeEvent, ChangeKind, CreateAccountRequest,
    CreatePhoneNumberOrderRequest, CreateUserRequest, CreateWebhookRequest, DeleteAccountRequest,
    DeletePhoneNumberRequest, DeleteUserRequest, DeleteWebhookRequest, GetAccountRequest,
    GetPhoneNumberOrderRequest, GetPhoneNumberRequest, GetTelephonySettingsRequest, GetUserRequest,
    GetWebhookRequest, LicenseType, ListAccountsRequest, ListChangesRequest,
    ListPhoneNumbersRequest, ListUsersRequest, ListWebhooksRequest, LogoutUserRequest, PhoneNumber,
    PhoneNumberProductType, PhoneNumberStatus, RestorePhoneNumberRequest,
    RotateWebhookSecretRequest, TelephonySettings, UnassignPhoneNumberRequest,
    UpdateAccountRequest, UpdatePhoneNumberRequest, UpdateTelephonySettingsRequest,
    UpdateUserRequest, UpdateWebhookRequest, User, WatchChangesRequest, WatchChangesResponse,
    account_service_client::AccountServiceClient, watch_changes_response::Kind,
};
use tonic::{Code, Status, Streaming};

mod batch_calls;

// ---------------------------------------------------------------------------------------------
// The table: every RPC, and what each kind of caller gets.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Account,
    User,
    PhoneNumber,
    Telephony,
    Change,
    Webhook,
}

impl Service {
    fn full_name(self) -> &'static str {
        match self {
            Self::Account => "telephony.admin.v1.AccountService",
            Self::User => "telephony.admin.v1.UserService",
            Self::PhoneNumber => "telephony.admin.v1.PhoneNumberService",
            Self::Telephony => "telephony.admin.v1.TelephonyService",
            Self::Change => "telephony.admin.v1.ChangeService",
            Self::Webhook => "telephony.admin.v1.WebhookService",
        }
    }
}

/// Every RPC of the API; the variant's name is the method's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    CreateAccount,
    GetAccount,
    ListAccounts,
    UpdateAccount,
    DeleteAccount,
    CreateUser,
    GetUser,
    ListUsers,
    UpdateUser,
    DeleteUser,
    LogoutUser,
    CreatePhoneNumberOrder,
    GetPhoneNumberOrder,
    GetPhoneNumber,
    ListPhoneNumbers,
    UpdatePhoneNumber,
    DeletePhoneNumber,
    RestorePhoneNumber,
    AssignPhoneNumber,
    UnassignPhoneNumber,
    GetTelephonySettings,
    UpdateTelephonySettings,
    WatchChanges,
    ListChanges,
    CreateWebhook,
    GetWebhook,
    ListWebhooks,
    UpdateWebhook,
    DeleteWebhook,
    RotateWebhookSecret,
    BatchCreateUsers,
    BatchUpdateUsers,
    BatchUpdatePhoneNumbers,
    BatchDeletePhoneNumbers,
    BatchAssignPhoneNumbers,
    BatchUnassignPhoneNumbers,
    BatchUpdateTelephonySettings,
    ListPhoneNumberOrders,
    ListPhoneNumberAssignments,
}

/// Who calls. "Own" and "other" say whether the request targets the key's account or another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    NoKey,
    BadKey,
    RevokedKey,
    OrgAdmin,
    OrgViewer,
    AccountAdminOwn,
    AccountAdminOther,
    AccountViewerOwn,
    AccountViewerOther,
}

const CALLERS: [Caller; 9] = [
    Caller::NoKey,
    Caller::BadKey,
    Caller::RevokedKey,
    Caller::OrgAdmin,
    Caller::OrgViewer,
    Caller::AccountAdminOwn,
    Caller::AccountAdminOther,
    Caller::AccountViewerOwn,
    Caller::AccountViewerOther,
];

impl Caller {
    /// The column of this caller in a row's expectations; `None` for unauthenticated callers,
    /// which are refused everywhere.
    fn column(self) -> Option<usize> {
        match self {
            Self::NoKey | Self::BadKey | Self::RevokedKey => None,
            Self::OrgAdmin => Some(0),
            Self::OrgViewer => Some(1),
            Self::AccountAdminOwn => Some(2),
            Self::AccountAdminOther => Some(3),
            Self::AccountViewerOwn => Some(4),
            Self::AccountViewerOther => Some(5),
        }
    }

    fn targets_other_account(self) -> bool {
        matches!(self, Self::AccountAdminOther | Self::AccountViewerOther)
    }
}

/// The outcome of one call: allowed, or refused for a reason visible in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allow,
    /// PERMISSION_DENIED: the key is a viewer.
    Viewer,
    /// PERMISSION_DENIED: the target is outside the key's account.
    Scope,
    /// PERMISSION_DENIED: only organisation keys may do this.
    OrgOnly,
    /// PERMISSION_DENIED: an account key may list the inventory or its own numbers only.
    ListScope,
    /// UNAUTHENTICATED without a key.
    NoCredentials,
    /// UNAUTHENTICATED with an unknown or revoked key.
    UnknownKey,
}

impl Expect {
    fn code(self) -> Code {
        match self {
            Self::Allow => Code::Ok,
            Self::Viewer | Self::Scope | Self::OrgOnly | Self::ListScope => Code::PermissionDenied,
            Self::NoCredentials | Self::UnknownKey => Code::Unauthenticated,
        }
    }

    fn message_fragment(self) -> &'static str {
        match self {
            Self::Allow => "",
            Self::Viewer => "viewer role",
            Self::Scope => "outside this API key's account",
            Self::OrgOnly => "needs an organisation key",
            Self::ListScope => "may list unassigned numbers",
            Self::NoCredentials => "missing credentials",
            Self::UnknownKey => "unknown or revoked",
        }
    }
}

struct Row {
    rpc: Rpc,
    /// Whether the RPC changes state, so that a refusal must leave everything as it was.
    mutates: bool,
    /// Columns: org admin, org viewer, account admin (own, other), account viewer (own, other).
    expect: [Expect; 6],
}

const MUTATES: bool = true;
const READS: bool = false;

fn table() -> Vec<Row> {
    use Expect::{Allow, ListScope, OrgOnly, Scope, Viewer};
    use Rpc::*;
    let row = |rpc, mutates, expect| Row {
        rpc,
        mutates,
        expect,
    };
    #[rustfmt::skip]
    let rows = vec![
        //                                 org admin org viewer acct admin own/other  acct viewer own/other
        row(CreateAccount,          MUTATES, [Allow, Viewer, OrgOnly, OrgOnly,   Viewer,  Viewer]),
        row(GetAccount,             READS,   [Allow, Allow,  Allow,   Scope,     Allow,   Scope]),
        row(ListAccounts,           READS,   [Allow, Allow,  Allow,   Allow,     Allow,   Allow]),
        row(UpdateAccount,          MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(DeleteAccount,          MUTATES, [Allow, Viewer, OrgOnly, OrgOnly,   Viewer,  Viewer]),
        row(CreateUser,             MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(GetUser,                READS,   [Allow, Allow,  Allow,   Scope,     Allow,   Scope]),
        row(ListUsers,              READS,   [Allow, Allow,  Allow,   Scope,     Allow,   Scope]),
        row(UpdateUser,             MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(DeleteUser,             MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(LogoutUser,             MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(CreatePhoneNumberOrder, MUTATES, [Allow, Viewer, OrgOnly, OrgOnly,   Viewer,  Viewer]),
        row(GetPhoneNumberOrder,    READS,   [Allow, Allow,  OrgOnly, OrgOnly,   OrgOnly, OrgOnly]),
        row(GetPhoneNumber,         READS,   [Allow, Allow,  Allow,   Scope,     Allow,   Scope]),
        row(ListPhoneNumbers,       READS,   [Allow, Allow,  Allow,   ListScope, Allow,   ListScope]),
        row(UpdatePhoneNumber,      MUTATES, [Allow, Viewer, OrgOnly, OrgOnly,   Viewer,  Viewer]),
        row(DeletePhoneNumber,      MUTATES, [Allow, Viewer, OrgOnly, OrgOnly,   Viewer,  Viewer]),
        row(RestorePhoneNumber,     MUTATES, [Allow, Viewer, OrgOnly, OrgOnly,   Viewer,  Viewer]),
        row(AssignPhoneNumber,      MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(UnassignPhoneNumber,    MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(GetTelephonySettings,   READS,   [Allow, Allow,  Allow,   Scope,     Allow,   Scope]),
        row(UpdateTelephonySettings,MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(WatchChanges,           READS,   [Allow, Allow,  Allow,   Scope,     Allow,   Scope]),
        row(ListChanges,            READS,   [Allow, Allow,  Allow,   Scope,     Allow,   Scope]),
        row(CreateWebhook,          MUTATES, [Allow, Viewer, OrgOnly, OrgOnly,   Viewer,  Viewer]),
        row(GetWebhook,             READS,   [Allow, Viewer, OrgOnly, OrgOnly,   Viewer,  Viewer]),
        row(ListWebhooks,           READS,   [Allow, Viewer, OrgOnly, OrgOnly,   Viewer,  Viewer]),
        row(UpdateWebhook,          MUTATES, [Allow, Viewer, OrgOnly, OrgOnly,   Viewer,  Viewer]),
        row(DeleteWebhook,          MUTATES, [Allow, Viewer, OrgOnly, OrgOnly,   Viewer,  Viewer]),
        row(RotateWebhookSecret,    MUTATES, [Allow, Viewer, OrgOnly, OrgOnly,   Viewer,  Viewer]),
        // Batches: the item's status, which must be the single RPC's.
        row(BatchCreateUsers,       MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(BatchUpdateUsers,       MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(BatchUpdatePhoneNumbers,MUTATES, [Allow, Viewer, OrgOnly, OrgOnly,   Viewer,  Viewer]),
        row(BatchDeletePhoneNumbers,MUTATES, [Allow, Viewer, OrgOnly, OrgOnly,   Viewer,  Viewer]),
        row(BatchAssignPhoneNumbers,MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(BatchUnassignPhoneNumbers, MUTATES, [Allow, Viewer, Allow, Scope,    Viewer,  Viewer]),
        row(BatchUpdateTelephonySettings, MUTATES, [Allow, Viewer, Allow, Scope, Viewer,  Viewer]),
        row(ListPhoneNumberOrders,  READS,   [Allow, Allow,  OrgOnly, OrgOnly,   OrgOnly, OrgOnly]),
        // An account key sees its own account's periods of any number.
        row(ListPhoneNumberAssignments, READS, [Allow, Allow, Allow,  Allow,     Allow,   Allow]),
    ];
    rows
}

impl Row {
    fn expectation(&self, caller: Caller) -> Expect {
        match caller {
            Caller::NoKey => Expect::NoCredentials,
            Caller::BadKey | Caller::RevokedKey => Expect::UnknownKey,
            _ => self.expect[caller.column().expect("an authenticated caller")],
        }
    }
}

impl Rpc {
    fn service(self) -> Service {
        use Rpc::*;
        match self {
            CreateAccount | GetAccount | ListAccounts | UpdateAccount | DeleteAccount => {
                Service::Account
            }
            CreateUser | GetUser | ListUsers | UpdateUser | DeleteUser | LogoutUser
            | BatchCreateUsers | BatchUpdateUsers => Service::User,
            CreatePhoneNumberOrder
            | GetPhoneNumberOrder
            | GetPhoneNumber
            | ListPhoneNumbers
            | UpdatePhoneNumber
            | DeletePhoneNumber
            | RestorePhoneNumber
            | BatchUpdatePhoneNumbers
            | BatchDeletePhoneNumbers
            | ListPhoneNumberOrders
            | ListPhoneNumberAssignments => Service::PhoneNumber,
            AssignPhoneNumber
            | UnassignPhoneNumber
            | GetTelephonySettings
            | UpdateTelephonySettings
            | BatchAssignPhoneNumbers
            | BatchUnassignPhoneNumbers
            | BatchUpdateTelephonySettings => Service::Telephony,
            WatchChanges | ListChanges => Service::Change,
            CreateWebhook | GetWebhook | ListWebhooks | UpdateWebhook | DeleteWebhook
            | RotateWebhookSecret => Service::Webhook,
        }
    }

    fn full_name(self) -> String {
        format!("{}/{:?}", self.service().full_name(), self)
    }

    /// Creates, as the organisation admin, what the call needs to succeed when allowed.
    async fn prepare(self, bench: &Bench, account_id: &str) -> Target {
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
            | CreateUser
            | ListPhoneNumbers
            | WatchChanges
            | ListChanges
            | CreateWebhook
            | ListWebhooks
            | BatchCreateUsers
            | ListPhoneNumberOrders => {}
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
    async fn call(self, app: &TestApp, key: Option<&str>, t: &Target) -> Result<(), Status> {
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
            BatchCreateUsers
            | BatchUpdateUsers
            | BatchUpdatePhoneNumbers
            | BatchDeletePhoneNumbers
            | BatchAssignPhoneNumbers
            | BatchUnassignPhoneNumbers
            | BatchUpdateTelephonySettings => batch_calls::call(self, app, key, t).await,
            ListPhoneNumberOrders => app
                .numbers_as(key)
                .list_phone_number_orders(proto::ListPhoneNumberOrdersRequest::default())
                .await
                .map(drop),
            ListPhoneNumberAssignments => app
                .numbers_as(key)
                .list_phone_number_assignments(proto::ListPhoneNumberAssignmentsRequest {
                    phone_number_id: t.number.clone(),
                    ..Default::default()
                })
                .await
                .map(drop),
        }
    }
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
struct Target {
    account_id: String,
    user_id: String,
    number: String,
    order_id: String,
    webhook_id: String,
}

/// A server with the keys every case shares.
struct Bench {
    app: TestApp,
    org_viewer: String,
    /// A key that worked and was then revoked.
    revoked: String,
    next_number: AtomicU32,
}

impl Bench {
    async fn start(backend: Backend) -> Self {
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
        let account = || Scope::Account(own.to_owned());
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
        .revoke_api_key(&record.id)
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
                Some(snapshot(app, &[&own, &other]).await)
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
                let after = snapshot(app, &[&own, &other]).await;
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

/// The table names every method the service descriptors declare, and nothing else.
#[test]
fn the_table_covers_every_rpc() {
    let descriptors = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set decodes");
    let declared: BTreeSet<String> = descriptors
        .file
        .iter()
        .filter(|f| f.package() == "telephony.admin.v1")
        .flat_map(|f| {
            f.service.iter().flat_map(move |s| {
                s.method
                    .iter()
                    .map(move |m| format!("{}.{}/{}", f.package(), s.name(), m.name()))
            })
        })
        .collect();
    let rows = table();
    let covered: BTreeSet<String> = rows.iter().map(|r| r.rpc.full_name()).collect();
    assert_eq!(covered.len(), rows.len(), "a row is listed twice");
    assert_eq!(covered, declared);
    assert_eq!(declared.len(), 39);
}

// ---------------------------------------------------------------------------------------------
// The state as the organisation admin sees it.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
struct Snapshot {
    accounts: Vec<Account>,
    users: Vec<User>,
    numbers: Vec<PhoneNumber>,
    changes: Vec<ChangeEvent>,
}

/// Every account, number and change event, and the users of `accounts` (the only accounts a
/// case targets).
async fn snapshot(app: &TestApp, accounts: &[&str]) -> Snapshot {
    let mut users = Vec::new();
    for account_id in accounts {
        users.extend(app.all_users(account_id).await);
    }
    Snapshot {
        accounts: app.all_accounts().await,
        users,
        numbers: app.all_numbers(ListPhoneNumbersRequest::default()).await,
        changes: app.all_changes("", "").await,
    }
}

/// The next event on a watch stream, skipping checkpoints.
async fn next_event(stream: &mut Streaming<WatchChangesResponse>) -> ChangeEvent {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an event arrives within 10 s")
            .expect("the stream does not fail")
            .expect("the stream stays open");
        if let Some(Kind::Event(event)) = item.kind {
            return event;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Beyond the table.
// ---------------------------------------------------------------------------------------------

/// An account key sees its own account in lists, the unassigned inventory, and nothing else.
async fn account_keys_see_only_their_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let own = app.create_account("Own").await;
    let other = app.create_account("Other").await;
    let own_user = app.create_user(&own.account_id, "own@example.com").await;
    let other_user = app
        .create_user(&other.account_id, "other@example.com")
        .await;
    app.order_business_numbers(&["+12065550100", "+12065550101", "+12065550102"])
        .await;
    app.assign(&other.account_id, &other_user.user_id, "+12065550101")
        .await
        .expect("assign number");
    let key = app
        .create_key(Role::Admin, Scope::Account(own.account_id.clone()))
        .await;

    let accounts = app
        .accounts_as(Some(&key))
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("list accounts")
        .into_inner()
        .accounts;
    assert_eq!(accounts, vec![own.clone()]);

    // The inventory: unassigned numbers only.
    let inventory = app
        .numbers_as(Some(&key))
        .list_phone_numbers(ListPhoneNumbersRequest {
            status: PhoneNumberStatus::Unassigned as i32,
            ..Default::default()
        })
        .await
        .expect("list the inventory")
        .into_inner()
        .phone_numbers;
    let listed: Vec<&str> = inventory
        .iter()
        .map(|n| n.e164_phone_number.as_str())
        .collect();
    assert_eq!(listed, ["+12065550100", "+12065550102"]);

    // Every number, or the assigned ones across accounts: refused.
    for status in [PhoneNumberStatus::Unspecified, PhoneNumberStatus::Assigned] {
        let refused = app
            .numbers_as(Some(&key))
            .list_phone_numbers(ListPhoneNumbersRequest {
                status: status as i32,
                ..Default::default()
            })
            .await
            .expect_err("listing beyond the inventory and the own account is refused");
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }

    // An unassigned number can be read and assigned from the inventory.
    let unassigned = app
        .numbers_as(Some(&key))
        .get_phone_number(GetPhoneNumberRequest {
            phone_number_id: "+1 206 555 0100".into(),
        })
        .await
        .expect("an unassigned number is visible")
        .into_inner();
    assert_eq!(unassigned.status, PhoneNumberStatus::Unassigned as i32);
    let user = assign_via(
        &mut app.telephony_as(Some(&key)),
        &own.account_id,
        &own_user.user_id,
        "+12065550100",
        "",
    )
    .await
    .expect("assign from the inventory");
    assert_eq!(user.primary_phone_number, "+12065550100");

    // Its own numbers, by account.
    let own_numbers = app
        .numbers_as(Some(&key))
        .list_phone_numbers(ListPhoneNumbersRequest {
            account_id: own.account_id.clone(),
            ..Default::default()
        })
        .await
        .expect("list own numbers")
        .into_inner()
        .phone_numbers;
    assert_eq!(own_numbers.len(), 1);
    assert_eq!(own_numbers[0].e164_phone_number, "+12065550100");

    // Another account's number: refused, as is one that does not exist.
    for number in ["+12065550101", "+12065559999"] {
        let refused = app
            .numbers_as(Some(&key))
            .get_phone_number(GetPhoneNumberRequest {
                phone_number_id: number.into(),
            })
            .await
            .expect_err("another account's number is not visible");
        assert_eq!(
            refused.code(),
            Code::PermissionDenied,
            "{number}: {refused:?}"
        );
    }

    // The change history without a filter means the key's own account (the other account
    // has an event too: its assignment above).
    let events = app
        .all_changes_as(&key, ListChangesRequest::default())
        .await;
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e.account_id == own.account_id),
        "{events:#?}"
    );
    let all = app.all_changes("", "").await;
    assert!(all.iter().any(|e| e.account_id == other.account_id));
}

/// Outside its scope a key learns nothing: an existing other account and an id that names
/// nothing get the same code and the same message, for every account-targeted RPC.
async fn refusals_do_not_reveal_existence(backend: Backend) {
    let app = spawn_app(backend).await;
    let own = app.create_account("Own").await;
    let other = app.create_account("Other").await;
    let other_user = app
        .create_user(&other.account_id, "other@example.com")
        .await;
    app.order_business_numbers(&["+12065550100", "+12065550101"])
        .await;
    app.assign(&other.account_id, &other_user.user_id, "+12065550100")
        .await
        .expect("assign number");
    let existing = Target {
        account_id: other.account_id.clone(),
        user_id: other_user.user_id.clone(),
        number: "+12065550101".into(),
        order_id: String::new(),
        webhook_id: String::new(),
    };
    let missing = Target {
        account_id: UNKNOWN_ID.into(),
        user_id: "0190a5b2-7c4e-7d1a-9b3f-2a6c8e4d1f01".into(),
        number: "+12065550101".into(),
        order_id: String::new(),
        webhook_id: String::new(),
    };
    let before = snapshot(&app, &[&own.account_id, &other.account_id]).await;
    for role in [Role::Admin, Role::Viewer] {
        let key = app
            .create_key(role, Scope::Account(own.account_id.clone()))
            .await;
        for rpc in [
            Rpc::GetAccount,
            Rpc::UpdateAccount,
            Rpc::CreateUser,
            Rpc::GetUser,
            Rpc::ListUsers,
            Rpc::UpdateUser,
            Rpc::DeleteUser,
            Rpc::LogoutUser,
            Rpc::ListPhoneNumbers,
            Rpc::AssignPhoneNumber,
            Rpc::UnassignPhoneNumber,
            Rpc::GetTelephonySettings,
            Rpc::UpdateTelephonySettings,
            Rpc::WatchChanges,
            Rpc::ListChanges,
        ] {
            let a = rpc
                .call(&app, Some(&key), &existing)
                .await
                .expect_err("outside the scope");
            let b = rpc
                .call(&app, Some(&key), &missing)
                .await
                .expect_err("outside the scope");
            assert_eq!(a.code(), Code::PermissionDenied, "{rpc:?} {role:?}: {a:?}");
            assert_eq!(
                (a.code(), a.message()),
                (b.code(), b.message()),
                "{rpc:?} {role:?}"
            );
        }
        // A number assigned to another account and one that does not exist.
        let assigned_elsewhere = Target {
            number: "+12065550100".into(),
            ..Target::default()
        };
        let nowhere = Target {
            number: "+12065559999".into(),
            ..Target::default()
        };
        let a = Rpc::GetPhoneNumber
            .call(&app, Some(&key), &assigned_elsewhere)
            .await
            .expect_err("another account's number");
        let b = Rpc::GetPhoneNumber
            .call(&app, Some(&key), &nowhere)
            .await
            .expect_err("no such number");
        assert_eq!(a.code(), Code::PermissionDenied, "{a:?}");
        assert_eq!((a.code(), a.message()), (b.code(), b.message()));
    }
    assert_eq!(
        before,
        snapshot(&app, &[&own.account_id, &other.account_id]).await
    );
}

/// Every change event names the id of the key that made it.
async fn change_events_name_their_actor(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await;
    let ann = app
        .create_user(&account.account_id, "ann@example.com")
        .await;
    let bob = app
        .create_user(&account.account_id, "bob@example.com")
        .await;
    app.order_business_numbers(&["+12065550100", "+12065550101"])
        .await;
    let (org_key, org_secret) = keys::create_key(
        &app.store,
        "org ops",
        Role::Admin,
        &Scope::Organisation,
        None,
    )
    .await
    .expect("create key");
    let (account_key, account_secret) = keys::create_key(
        &app.store,
        "account ops",
        Role::Admin,
        &Scope::Account(account.account_id.clone()),
        None,
    )
    .await
    .expect("create key");
    assert_ne!(org_key.id, account_key.id);

    let assign_as = async |secret: &str, user: &User, number: &str| {
        let mut client = app.telephony_as(Some(secret));
        assign_via(&mut client, &account.account_id, &user.user_id, number, "").await
    };
    assign_as(&account_secret, &ann, "+12065550100")
        .await
        .expect("assign as the account key");
    assign_as(&org_secret, &bob, "+12065550101")
        .await
        .expect("assign as the organisation key");
    app.telephony_as(Some(&account_secret))
        .update_telephony_settings(UpdateTelephonySettingsRequest {
            account_id: account.account_id.clone(),
            user_id: ann.user_id.clone(),
            telephony_settings: Some(TelephonySettings {
                inbound_calling: true,
                outbound_calling: false,
                sms: false,
            }),
            update_mask: None,
            request_id: String::new(),
        })
        .await
        .expect("update settings");
    app.users_as(Some(&org_secret))
        .logout_user(LogoutUserRequest {
            account_id: account.account_id.clone(),
            user_id: bob.user_id.clone(),
        })
        .await
        .expect("logout");
    app.users_as(Some(&account_secret))
        .delete_user(DeleteUserRequest {
            account_id: account.account_id.clone(),
            user_id: bob.user_id.clone(),
        })
        .await
        .expect("delete user");

    let events = app.all_changes("", "").await;
    let summary: Vec<(i32, &str, &str)> = events
        .iter()
        .map(|e| (e.kind, e.user_id.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                ChangeKind::PhoneNumberAssigned as i32,
                ann.user_id.as_str(),
                account_key.id.as_str()
            ),
            (
                ChangeKind::PhoneNumberAssigned as i32,
                bob.user_id.as_str(),
                org_key.id.as_str()
            ),
            (
                ChangeKind::TelephonySettingsUpdated as i32,
                ann.user_id.as_str(),
                account_key.id.as_str()
            ),
            (
                ChangeKind::UserSignOutRequested as i32,
                bob.user_id.as_str(),
                org_key.id.as_str()
            ),
            (
                ChangeKind::UserDeleted as i32,
                bob.user_id.as_str(),
                account_key.id.as_str()
            ),
        ]
    );
}

/// Viewers may watch: an organisation viewer sees every account's events, an account viewer
/// only its own.
async fn viewers_can_watch_changes(backend: Backend) {
    let app = spawn_app(backend).await;
    let own = app.create_account("Own").await;
    let other = app.create_account("Other").await;
    let own_user = app.create_user(&own.account_id, "own@example.com").await;
    let other_user = app
        .create_user(&other.account_id, "other@example.com")
        .await;
    app.order_business_numbers(&["+12065550100", "+12065550101"])
        .await;
    let org_viewer = app.create_key(Role::Viewer, Scope::Organisation).await;
    let account_viewer = app
        .create_key(Role::Viewer, Scope::Account(own.account_id.clone()))
        .await;

    let mut org_stream = app
        .changes_as(Some(&org_viewer))
        .watch_changes(WatchChangesRequest::default())
        .await
        .expect("an organisation viewer may watch")
        .into_inner();
    let mut account_stream = app
        .changes_as(Some(&account_viewer))
        .watch_changes(WatchChangesRequest::default())
        .await
        .expect("an account viewer may watch its account")
        .into_inner();

    // The other account's change first: the account viewer must not see it.
    app.assign(&other.account_id, &other_user.user_id, "+12065550101")
        .await
        .expect("assign number");
    app.assign(&own.account_id, &own_user.user_id, "+12065550100")
        .await
        .expect("assign number");

    let first = next_event(&mut org_stream).await;
    let second = next_event(&mut org_stream).await;
    assert_eq!(
        (first.account_id.as_str(), second.account_id.as_str()),
        (other.account_id.as_str(), own.account_id.as_str())
    );
    let seen = next_event(&mut account_stream).await;
    assert_eq!(seen.account_id, own.account_id);
    assert_eq!(seen.kind, ChangeKind::PhoneNumberAssigned as i32);
    assert_eq!(seen.e164_phone_number, "+12065550100");
}

/// Revoking a key ends its open watch streams with UNAUTHENTICATED: once the server knows of the
/// revocation, they deliver no further event; a stream of another key carries on.
async fn revoking_a_key_ends_its_watch_streams(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await;
    let ann = app
        .create_user(&account.account_id, "ann@example.com")
        .await;
    let bob = app
        .create_user(&account.account_id, "bob@example.com")
        .await;
    app.order_business_numbers(&["+12065550100", "+12065550101"])
        .await;
    let (record, secret) = keys::create_key(
        &app.store,
        "watcher",
        Role::Viewer,
        &Scope::Organisation,
        None,
    )
    .await
    .expect("create key");
    let other = app.create_key(Role::Viewer, Scope::Organisation).await;
    let watch = |key: String| {
        let client = app.changes_as(Some(&key));
        async move {
            let mut client = client;
            client
                .watch_changes(WatchChangesRequest::default())
                .await
                .expect("watch")
                .into_inner()
        }
    };
    let mut revoked_stream = watch(secret.clone()).await;
    let mut other_stream = watch(other).await;

    app.assign(&account.account_id, &ann.user_id, "+12065550100")
        .await
        .expect("assign number");
    assert_eq!(next_event(&mut revoked_stream).await.user_id, ann.user_id);
    assert_eq!(next_event(&mut other_stream).await.user_id, ann.user_id);

    app.store
        .revoke_api_key(&record.id)
        .await
        .expect("revoke key");
    // Revoked through another store: the server learns of it within 1 s.
    app.wait_until_refused(&secret).await;
    app.assign(&account.account_id, &bob.user_id, "+12065550101")
        .await
        .expect("assign number");
    assert_eq!(next_event(&mut other_stream).await.user_id, bob.user_id);
    let ended = loop {
        let item = tokio::time::timeout(Duration::from_secs(10), revoked_stream.message())
            .await
            .expect("the revoked stream answers within 10 s");
        match item {
            Ok(Some(WatchChangesResponse {
                kind: Some(Kind::Event(event)),
            })) => panic!("an event reached a revoked key: {event:?}"),
            Ok(Some(_checkpoint)) => continue,
            Ok(None) => panic!("the stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
}

/// The `authorization` metadata must be `Bearer <key>`; anything else is UNAUTHENTICATED.
async fn authorization_must_be_a_bearer_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let secret = app.admin_key.clone();
    let client = |value: String| {
        AccountServiceClient::with_interceptor(
            app.channel.clone(),
            Bearer(Some(value.parse().expect("ASCII metadata"))),
        )
    };
    for value in [
        secret.clone(),
        format!("Basic {secret}"),
        format!("Token {secret}"),
        format!("Bearer{secret}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Bearer {}", "x".repeat(300)),
        format!("{secret} Bearer"),
    ] {
        let refused = client(value.clone())
            .create_account(CreateAccountRequest {
                name: "Never".into(),
            })
            .await
            .expect_err("not a bearer token");
        assert_eq!(
            refused.code(),
            Code::Unauthenticated,
            "{value:?}: {refused:?}"
        );
        assert!(
            refused.message().contains("Bearer"),
            "the message says what to send: {refused:?}"
        );
    }
    // The control: the same secret as a bearer token works.
    client(format!("Bearer {secret}"))
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("a bearer token works");
    let accounts = app.all_accounts().await;
    assert!(accounts.is_empty(), "a refused call created {accounts:?}");
}

/// Health checking and both reflection versions answer without a key.
async fn health_and_reflection_need_no_key(backend: Backend) {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let app = spawn_app(backend).await;

    let mut health = HealthClient::new(app.channel.clone());
    for service in [
        "",
        "telephony.admin.v1.AccountService",
        "telephony.admin.v1.ChangeService",
    ] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("health of {service:?} without a key: {s:?}"))
            .into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32, "{service:?}");
    }

    let services = {
        use tonic_reflection::pb::v1::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let mut client = ServerReflectionClient::new(app.channel.clone());
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = client
            .server_reflection_info(tokio_stream::once(request))
            .await
            .expect("reflection v1 without a key")
            .into_inner();
        let answer = stream
            .message()
            .await
            .expect("v1 answer")
            .expect("one message");
        match answer.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
            }
            other => panic!("unexpected v1 reflection answer {other:?}"),
        }
    };
    let services_alpha = {
        use tonic_reflection::pb::v1alpha::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let mut client = ServerReflectionClient::new(app.channel.clone());
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = client
            .server_reflection_info(tokio_stream::once(request))
            .await
            .expect("reflection v1alpha without a key")
            .into_inner();
        let answer = stream
            .message()
            .await
            .expect("v1alpha answer")
            .expect("one message");
        match answer.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
            }
            other => panic!("unexpected v1alpha reflection answer {other:?}"),
        }
    };
    for listed in [&services, &services_alpha] {
        for service in [
            Service::Account,
            Service::User,
            Service::PhoneNumber,
            Service::Telephony,
            Service::Change,
            Service::Webhook,
        ] {
            assert!(
                listed.iter().any(|s| s == service.full_name()),
                "{} missing from {listed:?}",
                service.full_name()
            );
        }
    }

    // The control: the API itself needs a key on the same channel.
    let refused = app
        .accounts_as(None)
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect_err("the API needs a key");
    assert_eq!(refused.code(), Code::Unauthenticated);
}

// ---------------------------------------------------------------------------------------------
// The `keys` command of the real binary.
// ---------------------------------------------------------------------------------------------

/// Runs `telephony-admin --database-url <url> <args>`; returns standard output.
async fn keys_command(database_url: &str, args: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_telephony-admin"));
    command
        .arg("--database-url")
        .arg(database_url)
        .arg("keys")
        .args(args)
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the command task")
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "keys {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn field<'a>(output: &'a str, name: &str) -> &'a str {
    output
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name:?} line in {output}"))
}

async fn keys_cli_creates_lists_and_revokes(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Acme").await;
    let other = app.create_account("Other").await;

    let created = keys_command(
        &app.database_url,
        &["create", "--name", "ops", "--role", "viewer"],
    )
    .await;
    let id = field(&created, "id:").to_owned();
    let secret = field(&created, "secret:").to_owned();
    assert!(secret.starts_with("tak_"), "{created}");
    assert_eq!(field(&created, "role:"), "viewer");
    assert_eq!(field(&created, "scope:"), "organisation");

    // The secret works against the running server, as a viewer.
    let accounts = app
        .accounts_as(Some(&secret))
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("the new key reads")
        .into_inner()
        .accounts;
    assert_eq!(accounts.len(), 2);
    let refused = app
        .accounts_as(Some(&secret))
        .create_account(CreateAccountRequest {
            name: "Never".into(),
        })
        .await
        .expect_err("a viewer may not change");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // An account-scoped admin key from the command acts on its account only.
    let scoped = keys_command(
        &app.database_url,
        &[
            "create",
            "--name",
            "acme ops",
            "--role",
            "admin",
            "--account",
            &account.account_id,
        ],
    )
    .await;
    assert_eq!(field(&scoped, "scope:"), account.account_id);
    let scoped_secret = field(&scoped, "secret:").to_owned();
    app.users_as(Some(&scoped_secret))
        .create_user(CreateUserRequest {
            account_id: account.account_id.clone(),
            email: "ann@example.com".into(),
            display_name: "Ann".into(),
            license_type: LicenseType::Basic as i32,
        })
        .await
        .expect("the scoped key changes its account");
    let refused = app
        .users_as(Some(&scoped_secret))
        .list_users(ListUsersRequest {
            account_id: other.account_id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("the scoped key stays in its account");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // The list shows the key, never a secret.
    let listed = keys_command(&app.database_url, &["list"]).await;
    let line = listed
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{listed}"));
    assert!(line.contains("viewer") && line.contains("ops") && line.contains("organisation"));
    assert!(line.contains(" - "), "not revoked yet: {line}");
    for leaked in [&secret, &scoped_secret, &app.admin_key] {
        assert!(
            !listed.contains(leaked.as_str()),
            "a secret is listed:\n{listed}"
        );
    }
    assert!(!listed.contains("tak_"), "a secret is listed:\n{listed}");

    // Revoked by another process: refused within 1 s (polled with a generous deadline).
    let revoked = keys_command(&app.database_url, &["revoke", &id]).await;
    assert!(revoked.contains(&id), "{revoked}");
    app.wait_until_refused(&secret).await;
    let listed = keys_command(&app.database_url, &["list"]).await;
    let line = listed
        .lines()
        .find(|l| l.starts_with(&id))
        .expect("still listed");
    assert!(!line.contains(" - "), "shown as revoked: {line}");
    // Other keys keep working.
    app.accounts_as(Some(&scoped_secret))
        .get_account(GetAccountRequest {
            account_id: account.account_id.clone(),
        })
        .await
        .expect("another key is unaffected");
}

/// Kills the server process if a test fails while it runs.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The secrets used against a real server process (valid, unknown and revoked ones) never
/// appear in what it logs, even at debug level.
async fn secrets_never_appear_in_the_server_log(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let bootstrap = keys::generate_secret();
    let mut child = Command::new(env!("CARGO_BIN_EXE_telephony-admin"))
        .arg("--database-url")
        .arg(&database.url)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env_remove("DATABASE_URL")
        .env("TELEPHONY_ADMIN_BOOTSTRAP_KEY", &bootstrap)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let log = Arc::new(Mutex::new(String::new()));
    let (address_tx, address_rx) = tokio::sync::oneshot::channel::<String>();
    let mut address_tx = Some(address_tx);
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let mut server = ServerProcess(child);
    let readers = {
        let out_log = log.clone();
        let err_log = log.clone();
        [
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                        && json["message"] == "listening"
                        && let Some(address) = json["address"].as_str()
                        && let Some(tx) = address_tx.take()
                    {
                        let _ = tx.send(address.to_owned());
                    }
                    let mut log = out_log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            }),
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut log = err_log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            }),
        ]
    };
    let address = tokio::time::timeout(Duration::from_secs(60), address_rx)
        .await
        .expect("the server starts within 60 s")
        .unwrap_or_else(|_| panic!("the server exited:\n{}", log.lock().unwrap()));

    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let client = |secret: &str| {
        AccountServiceClient::with_interceptor(
            channel.clone(),
            Bearer(Some(format!("Bearer {secret}").parse().unwrap())),
        )
    };
    client(&bootstrap)
        .create_account(CreateAccountRequest {
            name: "Acme".into(),
        })
        .await
        .expect("the bootstrap key works");
    let unknown = keys::generate_secret();
    let refused = client(&unknown)
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect_err("an unknown key");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let created = keys_command(
        &database.url,
        &["create", "--name", "ops", "--role", "admin"],
    )
    .await;
    let (id, secret) = (
        field(&created, "id:"),
        field(&created, "secret:").to_owned(),
    );
    client(&secret)
        .list_accounts(ListAccountsRequest::default())
        .await
        .expect("the created key works");
    keys_command(&database.url, &["revoke", id]).await;
    let deadline = Instant::now() + REVOCATION_WAIT;
    while client(&secret)
        .list_accounts(ListAccountsRequest::default())
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "the revoked key still works");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(channel);

    let _ = server.0.kill();
    let _ = server.0.wait();
    for reader in readers {
        reader.join().expect("log reader");
    }
    let log = log.lock().unwrap().clone();
    assert!(
        log.contains("AccountService/CreateAccount"),
        "the RPCs were logged, so the log was captured:\n{log}"
    );
    for leaked in [&bootstrap, &unknown, &secret] {
        assert!(!log.contains(leaked.as_str()), "a secret is in the log");
        // Not even the part after the prefix.
        assert!(!log.contains(&leaked[4..]), "a secret is in the log");
    }
    drop(database);
}

on_both_databases!(
    account_service_access,
    user_service_access,
    phone_number_service_access,
    telephony_service_access,
    change_service_access,
    webhook_service_access,
    account_keys_see_only_their_account,
    refusals_do_not_reveal_existence,
    change_events_name_their_actor,
    viewers_can_watch_changes,
    revoking_a_key_ends_its_watch_streams,
    authorization_must_be_a_bearer_token,
    health_and_reflection_need_no_key,
    keys_cli_creates_lists_and_revokes,
    secrets_never_appear_in_the_server_log,
);
