//! `users`: people in an account, with their calling and SMS permissions. The user's number is
//! the row of `phone_numbers` that points at the user (unique), so it cannot disagree with it.
//! The `sign_out_pending_…` columns say which changes the user has not yet signed in again for.

use sea_orm::entity::prelude::*;

use super::enums::LicenseType;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub account_id: String,
    pub email: String,
    pub display_name: String,
    pub license_type: LicenseType,
    pub inbound_calling: bool,
    pub outbound_calling: bool,
    pub sms: bool,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
    /// The sign-out-required changes not yet acknowledged (all NULL when none is pending).
    pub sign_out_pending_oldest_sequence: Option<i64>,
    pub sign_out_pending_oldest_time: Option<DateTimeUtc>,
    pub sign_out_pending_latest_sequence: Option<i64>,
    pub sign_out_pending_latest_time: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
