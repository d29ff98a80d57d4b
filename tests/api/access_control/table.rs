//! The table: every RPC, and what each kind of caller gets. It covers every method the service
//! descriptors declare.

use prost::Message;
use std::collections::BTreeSet;
use telephony_admin::proto;
use tonic::Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Service {
    Account,
    User,
    PhoneNumber,
    Telephony,
    Change,
    Webhook,
    EmergencyLocation,
}

impl Service {
    pub(super) fn full_name(self) -> &'static str {
        match self {
            Self::Account => "telephony.admin.v1.AccountService",
            Self::User => "telephony.admin.v1.UserService",
            Self::PhoneNumber => "telephony.admin.v1.PhoneNumberService",
            Self::Telephony => "telephony.admin.v1.TelephonyService",
            Self::Change => "telephony.admin.v1.ChangeService",
            Self::Webhook => "telephony.admin.v1.WebhookService",
            Self::EmergencyLocation => "telephony.admin.v1.EmergencyLocationService",
        }
    }
}

/// Every RPC of the API; the variant's name is the method's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rpc {
    CreateAccount,
    GetAccount,
    ListAccounts,
    UpdateAccount,
    DeleteAccount,
    GetCaller,
    CreateUser,
    GetUser,
    ListUsers,
    UpdateUser,
    DeleteUser,
    LogoutUser,
    AcknowledgeSignOut,
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
    CreateEmergencyAddress,
    GetEmergencyAddress,
    ListEmergencyAddresses,
    UpdateEmergencyAddress,
    DeleteEmergencyAddress,
    CreateEmergencyLocation,
    GetEmergencyLocation,
    ListEmergencyLocations,
    DeleteEmergencyLocation,
    SetEmergencyLocation,
}

/// Who calls. "Own" and "other" say whether the request targets the key's account or another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Caller {
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

pub(super) const CALLERS: [Caller; 9] = [
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

    pub(super) fn targets_other_account(self) -> bool {
        matches!(self, Self::AccountAdminOther | Self::AccountViewerOther)
    }
}

/// The outcome of one call: allowed, or refused for a reason visible in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
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
    pub(super) fn code(self) -> Code {
        match self {
            Self::Allow => Code::Ok,
            Self::Viewer | Self::Scope | Self::OrgOnly | Self::ListScope => Code::PermissionDenied,
            Self::NoCredentials | Self::UnknownKey => Code::Unauthenticated,
        }
    }

    pub(super) fn message_fragment(self) -> &'static str {
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

pub(crate) struct Row {
    pub(crate) rpc: Rpc,
    /// Whether the RPC changes state, so that a refusal must leave everything as it was.
    pub(crate) mutates: bool,
    /// Columns: org admin, org viewer, account admin (own, other), account viewer (own, other).
    expect: [Expect; 6],
}

const MUTATES: bool = true;
const READS: bool = false;

pub(crate) fn table() -> Vec<Row> {
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
        // Any valid key may ask who it is.
        row(GetCaller,              READS,   [Allow, Allow,  Allow,   Allow,     Allow,   Allow]),
        row(CreateUser,             MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(GetUser,                READS,   [Allow, Allow,  Allow,   Scope,     Allow,   Scope]),
        row(ListUsers,              READS,   [Allow, Allow,  Allow,   Scope,     Allow,   Scope]),
        row(UpdateUser,             MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(DeleteUser,             MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(LogoutUser,             MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(AcknowledgeSignOut,     MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
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
        row(CreateEmergencyAddress, MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(GetEmergencyAddress,    READS,   [Allow, Allow,  Allow,   Scope,     Allow,   Scope]),
        row(ListEmergencyAddresses, READS,   [Allow, Allow,  Allow,   Scope,     Allow,   Scope]),
        row(UpdateEmergencyAddress, MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(DeleteEmergencyAddress, MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(CreateEmergencyLocation,MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(GetEmergencyLocation,   READS,   [Allow, Allow,  Allow,   Scope,     Allow,   Scope]),
        row(ListEmergencyLocations, READS,   [Allow, Allow,  Allow,   Scope,     Allow,   Scope]),
        row(DeleteEmergencyLocation,MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
        row(SetEmergencyLocation,   MUTATES, [Allow, Viewer, Allow,   Scope,     Viewer,  Viewer]),
    ];
    rows
}

impl Row {
    pub(super) fn expectation(&self, caller: Caller) -> Expect {
        match caller {
            Caller::NoKey => Expect::NoCredentials,
            Caller::BadKey | Caller::RevokedKey => Expect::UnknownKey,
            _ => self.expect[caller.column().expect("an authenticated caller")],
        }
    }
}

impl Rpc {
    pub(super) fn service(self) -> Service {
        use Rpc::*;
        match self {
            CreateAccount | GetAccount | ListAccounts | UpdateAccount | DeleteAccount
            | GetCaller => Service::Account,
            CreateUser | GetUser | ListUsers | UpdateUser | DeleteUser | LogoutUser
            | AcknowledgeSignOut | BatchCreateUsers | BatchUpdateUsers => Service::User,
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
            CreateEmergencyAddress
            | GetEmergencyAddress
            | ListEmergencyAddresses
            | UpdateEmergencyAddress
            | DeleteEmergencyAddress
            | CreateEmergencyLocation
            | GetEmergencyLocation
            | ListEmergencyLocations
            | DeleteEmergencyLocation
            | SetEmergencyLocation => Service::EmergencyLocation,
        }
    }

    pub(crate) fn full_name(self) -> String {
        format!("{}/{:?}", self.service().full_name(), self)
    }
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
    assert_eq!(declared.len(), 51);
}
