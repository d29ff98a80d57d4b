//! The table's batch rows: each call sends a batch of one item (the single row's target) and
//! answers the item's status, so the table checks that a batch item is refused exactly as the
//! single RPC is. The batch itself must be answered.

use telephony_admin::proto::{
    BatchCreateUsersRequest, BatchDeletePhoneNumbersRequest, BatchUpdatePhoneNumbersRequest,
    BatchUpdateTelephonySettingsRequest, BatchUpdateUsersRequest, LicenseType, TelephonySettings,
    batch_assign_phone_numbers_request, batch_create_users_request,
    batch_update_phone_numbers_request, batch_update_telephony_settings_request,
    batch_update_users_request,
};
use tonic::{Code, Status};

use super::roles::Target;
use super::table::Rpc;
use crate::common::TestApp;
use crate::common::fixtures::mask;

/// The one item's status as the outcome of a call.
fn item_outcome(statuses: Vec<Option<tonic_types::pb::Status>>) -> Result<(), Status> {
    let [Some(status)] = statuses.as_slice() else {
        return Err(Status::internal(format!(
            "expected one result with a status: {statuses:?}"
        )));
    };
    match Code::from_i32(status.code) {
        Code::Ok => Ok(()),
        code => Err(Status::new(code, status.message.clone())),
    }
}

pub(super) async fn call(
    rpc: Rpc,
    app: &TestApp,
    key: Option<&str>,
    t: &Target,
) -> Result<(), Status> {
    let account_id = t.account_id.clone();
    let user_id = t.user_id.clone();
    let statuses = match rpc {
        Rpc::BatchCreateUsers => app
            .users_as(key)
            .batch_create_users(BatchCreateUsersRequest {
                account_id,
                items: vec![batch_create_users_request::Item {
                    email: "created@example.com".into(),
                    display_name: "Created".into(),
                    license_type: LicenseType::Basic as i32,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .await?
            .into_inner()
            .results
            .into_iter()
            .map(|r| r.status)
            .collect(),
        Rpc::BatchUpdateUsers => app
            .users_as(key)
            .batch_update_users(BatchUpdateUsersRequest {
                account_id,
                items: vec![batch_update_users_request::Item {
                    emergency_location_id: String::new(),
                    user_id,
                    display_name: "Renamed".into(),
                    license_type: LicenseType::Plus as i32,
                    update_mask: None,
                }],
                ..Default::default()
            })
            .await?
            .into_inner()
            .results
            .into_iter()
            .map(|r| r.status)
            .collect(),
        Rpc::BatchUpdatePhoneNumbers => app
            .numbers_as(key)
            .batch_update_phone_numbers(BatchUpdatePhoneNumbersRequest {
                items: vec![batch_update_phone_numbers_request::Item {
                    phone_number_id: t.number.clone(),
                    product_type: 0,
                    calling_name: "Front Desk".into(),
                    update_mask: Some(mask(&["calling_name"])),
                }],
                ..Default::default()
            })
            .await?
            .into_inner()
            .results
            .into_iter()
            .map(|r| r.status)
            .collect(),
        Rpc::BatchDeletePhoneNumbers => app
            .numbers_as(key)
            .batch_delete_phone_numbers(BatchDeletePhoneNumbersRequest {
                phone_number_ids: vec![t.number.clone()],
                ..Default::default()
            })
            .await?
            .into_inner()
            .results
            .into_iter()
            .map(|r| r.status)
            .collect(),
        Rpc::BatchAssignPhoneNumbers => app
            .telephony_as(key)
            .batch_assign_phone_numbers(telephony_admin::proto::BatchAssignPhoneNumbersRequest {
                account_id,
                items: vec![batch_assign_phone_numbers_request::Item {
                    emergency_location_id: String::new(),
                    user_id,
                    e164_phone_number: t.number.clone(),
                }],
                ..Default::default()
            })
            .await?
            .into_inner()
            .results
            .into_iter()
            .map(|r| r.status)
            .collect(),
        Rpc::BatchUnassignPhoneNumbers => app
            .telephony_as(key)
            .batch_unassign_phone_numbers(
                telephony_admin::proto::BatchUnassignPhoneNumbersRequest {
                    account_id,
                    user_ids: vec![user_id],
                    confirm: true,
                    ..Default::default()
                },
            )
            .await?
            .into_inner()
            .results
            .into_iter()
            .map(|r| r.status)
            .collect(),
        Rpc::BatchUpdateTelephonySettings => app
            .telephony_as(key)
            .batch_update_telephony_settings(BatchUpdateTelephonySettingsRequest {
                account_id,
                items: vec![batch_update_telephony_settings_request::Item {
                    user_id,
                    telephony_settings: Some(TelephonySettings {
                        inbound_calling: true,
                        outbound_calling: true,
                        sms: true,
                    }),
                    update_mask: None,
                }],
                ..Default::default()
            })
            .await?
            .into_inner()
            .results
            .into_iter()
            .map(|r| r.status)
            .collect(),
        other => unreachable!("{other:?} is not a batch"),
    };
    item_outcome(statuses)
}
