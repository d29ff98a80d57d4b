//! Conversions between the store's read models and protobuf messages, and between proto enums and
//! domain types. Unknown enum numbers are INVALID_ARGUMENT, never a panic. The change event's
//! conversion is [`crate::convert`]'s, which webhooks share.

use crate::domain::ids::LocationId;
use crate::domain::phone_number::{NumberStatus, NumberType, OrderStatus, ProductType};
use crate::domain::telephony::TelephonySettings;
use crate::domain::user::LicenseType;
use crate::domain::{DomainError, FieldViolation};
use crate::keys::Role;
use crate::proto;
use crate::store::{AccountView, LocationSource, NumberView, OrderRecord, UserView};

/// The conversions the deliveries share (the change event and what it carries).
pub use crate::convert::{change_event, change_kind, settings, timestamp};

pub fn account(a: AccountView) -> proto::Account {
    proto::Account {
        account_id: a.account_id.into(),
        name: a.name,
        create_time: Some(timestamp(a.create_time)),
        update_time: Some(timestamp(a.update_time)),
    }
}

pub fn role(role: Role) -> proto::Role {
    match role {
        Role::Admin => proto::Role::Admin,
        Role::Viewer => proto::Role::Viewer,
        Role::SessionService => proto::Role::SessionService,
    }
}

pub fn settings_from(s: &proto::TelephonySettings) -> TelephonySettings {
    TelephonySettings {
        inbound_calling: s.inbound_calling,
        outbound_calling: s.outbound_calling,
        sms: s.sms,
    }
}

/// An effective emergency location and where it comes from.
pub fn effective_location(
    (location_id, source): (LocationId, LocationSource),
) -> proto::EffectiveEmergencyLocation {
    let source = match source {
        LocationSource::Number => proto::EmergencyLocationSource::Number,
        LocationSource::User => proto::EmergencyLocationSource::User,
        LocationSource::AccountDefault => proto::EmergencyLocationSource::AccountDefault,
    };
    proto::EffectiveEmergencyLocation {
        location_id: location_id.into(),
        source: source as i32,
    }
}

pub fn user(v: UserView) -> proto::User {
    let license_type = match v.license_type {
        LicenseType::Basic => proto::LicenseType::Basic,
        LicenseType::Plus => proto::LicenseType::Plus,
        LicenseType::Pro => proto::LicenseType::Pro,
        LicenseType::ProTrial => proto::LicenseType::ProTrial,
    };
    let telephony_settings = Some(settings(v.settings()));
    let sign_out_pending = v.sign_out_pending.map(|p| proto::SignOutPending {
        oldest_change_sequence: p.oldest_sequence,
        oldest_change_time: Some(timestamp(p.oldest_time)),
        latest_change_sequence: p.latest_sequence,
        latest_change_time: Some(timestamp(p.latest_time)),
    });
    proto::User {
        // GetUser adds it.
        emergency_location: None,
        account_id: v.account_id.into(),
        user_id: v.user_id.into(),
        email: v.email,
        display_name: v.display_name,
        license_type: license_type as i32,
        primary_phone_number: v.phone_number.map(String::from).unwrap_or_default(),
        telephony_settings,
        create_time: Some(timestamp(v.create_time)),
        update_time: Some(timestamp(v.update_time)),
        sign_out_pending,
    }
}

/// A required licence type.
pub fn license_type(field: &str, raw: i32) -> Result<LicenseType, DomainError> {
    match proto::LicenseType::try_from(raw) {
        Ok(proto::LicenseType::Basic) => Ok(LicenseType::Basic),
        Ok(proto::LicenseType::Plus) => Ok(LicenseType::Plus),
        Ok(proto::LicenseType::Pro) => Ok(LicenseType::Pro),
        Ok(proto::LicenseType::ProTrial) => Ok(LicenseType::ProTrial),
        Ok(proto::LicenseType::Unspecified) => Err(DomainError::invalid(
            field,
            "is required: BASIC, PLUS, PRO or PRO_TRIAL",
        )),
        Err(_) => Err(unknown_enum(field, raw)),
    }
}

/// A product type; `None` for UNSPECIFIED.
pub fn product_type(field: &str, raw: i32) -> Result<Option<ProductType>, DomainError> {
    use proto::PhoneNumberProductType as P;
    match P::try_from(raw) {
        Ok(P::Unspecified) => Ok(None),
        Ok(P::BusinessCalling) => Ok(Some(ProductType::BusinessCalling)),
        Ok(P::VoiceConnector) => Ok(Some(ProductType::VoiceConnector)),
        Ok(P::SipMediaApplicationDialIn) => Ok(Some(ProductType::SipMediaApplicationDialIn)),
        Err(_) => Err(unknown_enum(field, raw)),
    }
}

/// A number status filter; `None` for UNSPECIFIED.
pub fn number_status(field: &str, raw: i32) -> Result<Option<NumberStatus>, DomainError> {
    use proto::PhoneNumberStatus as S;
    match S::try_from(raw) {
        Ok(S::Unspecified) => Ok(None),
        Ok(S::Unassigned) => Ok(Some(NumberStatus::Unassigned)),
        Ok(S::Assigned) => Ok(Some(NumberStatus::Assigned)),
        Ok(S::DeleteInProgress) => Ok(Some(NumberStatus::DeleteInProgress)),
        Err(_) => Err(unknown_enum(field, raw)),
    }
}

fn unknown_enum(field: &str, raw: i32) -> DomainError {
    DomainError::InvalidArgument(vec![FieldViolation::new(
        field,
        format!("{raw} is not a known value"),
    )])
}

fn proto_product_type(value: ProductType) -> proto::PhoneNumberProductType {
    match value {
        ProductType::BusinessCalling => proto::PhoneNumberProductType::BusinessCalling,
        ProductType::VoiceConnector => proto::PhoneNumberProductType::VoiceConnector,
        ProductType::SipMediaApplicationDialIn => {
            proto::PhoneNumberProductType::SipMediaApplicationDialIn
        }
    }
}

pub fn phone_number(n: NumberView) -> proto::PhoneNumber {
    let status = match n.status {
        NumberStatus::Unassigned => proto::PhoneNumberStatus::Unassigned,
        NumberStatus::Assigned => proto::PhoneNumberStatus::Assigned,
        NumberStatus::DeleteInProgress => proto::PhoneNumberStatus::DeleteInProgress,
    };
    let number_type = match n.number_type {
        NumberType::Local => proto::PhoneNumberType::Local,
        NumberType::TollFree => proto::PhoneNumberType::TollFree,
    };
    let product_type = proto_product_type(n.product_type);
    // Business calling numbers carry voice and SMS; the others carry voice only.
    let sms = product_type == proto::PhoneNumberProductType::BusinessCalling
        && number_type == proto::PhoneNumberType::Local;
    let association = match (&n.account_id, &n.user_id) {
        (Some(account_id), Some(user_id)) => Some(proto::PhoneNumberAssociation {
            account_id: account_id.to_string(),
            user_id: user_id.to_string(),
            associate_time: n.associate_time.map(timestamp),
        }),
        _ => None,
    };
    proto::PhoneNumber {
        // GetPhoneNumber adds it.
        emergency_location: None,
        phone_number_id: n.e164.to_string(),
        e164_phone_number: n.e164.into(),
        country: n.country,
        r#type: number_type as i32,
        product_type: product_type as i32,
        status: status as i32,
        capabilities: Some(proto::PhoneNumberCapabilities {
            inbound_call: true,
            outbound_call: true,
            inbound_sms: sms,
            outbound_sms: sms,
            inbound_mms: sms,
            outbound_mms: sms,
        }),
        association,
        calling_name: n.calling_name,
        create_time: Some(timestamp(n.create_time)),
        update_time: Some(timestamp(n.update_time)),
        deletion_time: n.deletion_time.map(timestamp),
        order_id: n.order_id.into(),
    }
}

pub fn order(o: OrderRecord) -> proto::PhoneNumberOrder {
    let status = match o.status {
        OrderStatus::Successful => proto::PhoneNumberOrderStatus::Successful,
        OrderStatus::Partial => proto::PhoneNumberOrderStatus::Partial,
        OrderStatus::Failed => proto::PhoneNumberOrderStatus::Failed,
    };
    proto::PhoneNumberOrder {
        order_id: o.order_id.into(),
        product_type: proto_product_type(o.product_type) as i32,
        status: status as i32,
        ordered_phone_numbers: o
            .items
            .into_iter()
            .map(|item| proto::OrderedPhoneNumber {
                e164_phone_number: item.e164,
                status: if item.acquired {
                    proto::OrderedPhoneNumberStatus::Acquired
                } else {
                    proto::OrderedPhoneNumberStatus::Failed
                } as i32,
                reason: item.reason,
            })
            .collect(),
        create_time: Some(timestamp(o.create_time)),
    }
}

/// FieldMask paths, each checked against `allowed`.
pub fn mask_paths<'a>(
    field: &str,
    mask: Option<&'a prost_types::FieldMask>,
    allowed: &[&str],
) -> Result<Vec<&'a str>, DomainError> {
    let Some(mask) = mask else {
        return Ok(Vec::new());
    };
    let mut paths = Vec::with_capacity(mask.paths.len());
    for path in &mask.paths {
        if !allowed.contains(&path.as_str()) {
            return Err(DomainError::invalid(
                field,
                format!(
                    "unknown path {:?}; allowed: {}",
                    crate::domain::truncate(path, 64),
                    allowed.join(", ")
                ),
            ));
        }
        paths.push(path.as_str());
    }
    Ok(paths)
}
