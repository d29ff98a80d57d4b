//! The stored forms of the use cases' answers ([`Answer`] for the read models): what an
//! idempotent request's retry gets back, whichever version of the service stored it. Each form
//! spells its fields out, so a field added to a read model or a column added to a table
//! changes neither, and forms of earlier versions are still read.

use chrono::{DateTime, Utc};
use sea_orm::ActiveEnum;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::ids::{AccountId, OrderId, UserId};
use crate::domain::phone_number::E164;
use crate::domain::sign_out::SignOutPending;
use crate::domain::telephony::TelephonySettings;
use crate::domain::user::LicenseType;
use crate::store::db::entities::enums;
use crate::store::db::views::{NumberView, UserView};
use crate::store::engine::answers::Answer;

/// Calling and SMS permissions, as stored.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct StoredSettings {
    inbound_calling: bool,
    outbound_calling: bool,
    sms: bool,
}

impl From<TelephonySettings> for StoredSettings {
    fn from(s: TelephonySettings) -> Self {
        Self {
            inbound_calling: s.inbound_calling,
            outbound_calling: s.outbound_calling,
            sms: s.sms,
        }
    }
}

impl From<StoredSettings> for TelephonySettings {
    fn from(s: StoredSettings) -> Self {
        Self {
            inbound_calling: s.inbound_calling,
            outbound_calling: s.outbound_calling,
            sms: s.sms,
        }
    }
}

impl Answer for TelephonySettings {
    type Stored = StoredSettings;

    fn to_stored(&self) -> StoredSettings {
        (*self).into()
    }

    fn from_stored(stored: StoredSettings) -> Option<Self> {
        Some(stored.into())
    }

    fn from_unversioned(value: Value) -> Option<Self> {
        serde_json::from_value::<StoredSettings>(value)
            .ok()
            .map(Into::into)
    }
}

/// A user with their number, as stored (version 1; also the unversioned form that came before).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredUser {
    account_id: String,
    user_id: String,
    email: String,
    display_name: String,
    license_type: String,
    settings: StoredSettings,
    phone_number: Option<String>,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
    /// Absent from answers stored before sign-out tracking, and while nothing is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sign_out_pending: Option<StoredSignOutPending>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSignOutPending {
    oldest_sequence: u64,
    oldest_time: DateTime<Utc>,
    latest_sequence: u64,
    latest_time: DateTime<Utc>,
}

impl From<SignOutPending> for StoredSignOutPending {
    fn from(p: SignOutPending) -> Self {
        Self {
            oldest_sequence: p.oldest_sequence,
            oldest_time: p.oldest_time,
            latest_sequence: p.latest_sequence,
            latest_time: p.latest_time,
        }
    }
}

impl From<StoredSignOutPending> for SignOutPending {
    fn from(p: StoredSignOutPending) -> Self {
        Self {
            oldest_sequence: p.oldest_sequence,
            oldest_time: p.oldest_time,
            latest_sequence: p.latest_sequence,
            latest_time: p.latest_time,
        }
    }
}

/// The oldest unversioned form: the user's row and their number.
#[derive(Deserialize)]
struct RowForm {
    user: RowUser,
    phone_number: Option<String>,
}

#[derive(Deserialize)]
struct RowUser {
    id: String,
    account_id: String,
    email: String,
    display_name: String,
    license_type: String,
    inbound_calling: bool,
    outbound_calling: bool,
    sms: bool,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
}

impl Answer for UserView {
    type Stored = StoredUser;

    fn visit_sequences(&mut self, visit: &mut dyn FnMut(&mut u64)) {
        if let Some(pending) = &mut self.sign_out_pending {
            visit(&mut pending.oldest_sequence);
            visit(&mut pending.latest_sequence);
        }
    }

    fn to_stored(&self) -> StoredUser {
        StoredUser {
            account_id: self.account_id.to_string(),
            user_id: self.user_id.to_string(),
            email: self.email.clone(),
            display_name: self.display_name.clone(),
            license_type: license_name(self.license_type),
            settings: self.settings.into(),
            phone_number: self.phone_number.clone().map(String::from),
            create_time: self.create_time,
            update_time: self.update_time,
            sign_out_pending: self.sign_out_pending.map(Into::into),
        }
    }

    fn from_stored(s: StoredUser) -> Option<Self> {
        Some(UserView {
            account_id: AccountId::from_stored(s.account_id),
            user_id: UserId::from_stored(s.user_id),
            email: s.email,
            display_name: s.display_name,
            license_type: license_type(&s.license_type)?,
            settings: s.settings.into(),
            phone_number: s.phone_number.map(E164::from_stored),
            create_time: s.create_time,
            update_time: s.update_time,
            sign_out_pending: s.sign_out_pending.map(Into::into),
        })
    }

    fn from_unversioned(value: Value) -> Option<Self> {
        if let Ok(stored) = serde_json::from_value::<StoredUser>(value.clone()) {
            return Self::from_stored(stored);
        }
        let RowForm { user, phone_number } = serde_json::from_value(value).ok()?;
        Some(UserView {
            account_id: AccountId::from_stored(user.account_id),
            user_id: UserId::from_stored(user.id),
            email: user.email,
            display_name: user.display_name,
            license_type: license_type(&user.license_type)?,
            settings: TelephonySettings {
                inbound_calling: user.inbound_calling,
                outbound_calling: user.outbound_calling,
                sms: user.sms,
            },
            phone_number: phone_number.map(E164::from_stored),
            create_time: user.create_time,
            update_time: user.update_time,
            sign_out_pending: None,
        })
    }
}

/// A number of the inventory, as stored (version 1; also the unversioned form, which was the
/// number's row).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredNumber {
    e164: String,
    country: String,
    number_type: String,
    product_type: String,
    status: String,
    account_id: Option<String>,
    user_id: Option<String>,
    associate_time: Option<DateTime<Utc>>,
    calling_name: String,
    order_id: String,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
    deletion_time: Option<DateTime<Utc>>,
}

impl Answer for NumberView {
    type Stored = StoredNumber;

    fn to_stored(&self) -> StoredNumber {
        StoredNumber {
            e164: self.e164.to_string(),
            country: self.country.clone(),
            number_type: enums::NumberType::from(self.number_type).to_value(),
            product_type: enums::ProductType::from(self.product_type).to_value(),
            status: enums::NumberStatus::from(self.status).to_value(),
            account_id: self.account_id.as_ref().map(AccountId::to_string),
            user_id: self.user_id.as_ref().map(UserId::to_string),
            associate_time: self.associate_time,
            calling_name: self.calling_name.clone(),
            order_id: self.order_id.to_string(),
            create_time: self.create_time,
            update_time: self.update_time,
            deletion_time: self.deletion_time,
        }
    }

    fn from_stored(s: StoredNumber) -> Option<Self> {
        Some(NumberView {
            number_type: stored_enum::<enums::NumberType>(&s.number_type)?.into(),
            product_type: stored_enum::<enums::ProductType>(&s.product_type)?.into(),
            status: stored_enum::<enums::NumberStatus>(&s.status)?.into(),
            e164: E164::from_stored(s.e164),
            country: s.country,
            account_id: s.account_id.map(AccountId::from_stored),
            user_id: s.user_id.map(UserId::from_stored),
            associate_time: s.associate_time,
            calling_name: s.calling_name,
            order_id: OrderId::from_stored(s.order_id),
            create_time: s.create_time,
            update_time: s.update_time,
            deletion_time: s.deletion_time,
        })
    }

    fn from_unversioned(value: Value) -> Option<Self> {
        Self::from_stored(serde_json::from_value(value).ok()?)
    }
}

/// A stored enum by the name it is stored under.
fn stored_enum<E: ActiveEnum<Value = String>>(name: &str) -> Option<E> {
    E::try_from_value(&name.to_owned()).ok()
}

/// A licence type by the name it is stored under.
fn license_name(license: LicenseType) -> String {
    enums::LicenseType::from(license).to_value()
}

fn license_type(name: &str) -> Option<LicenseType> {
    enums::LicenseType::try_from_value(&name.to_owned())
        .ok()
        .map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DomainError, Refusal};
    use crate::store::engine::answers::{Unreadable, VERSION, decode, encode};
    use crate::store::engine::set_run::{ItemRefusal, ItemResult};

    fn user() -> UserView {
        UserView {
            account_id: AccountId::from_stored("a".into()),
            user_id: UserId::from_stored("u".into()),
            email: "ann@example.com".into(),
            display_name: "Ann".into(),
            license_type: LicenseType::Pro,
            settings: TelephonySettings {
                sms: true,
                ..TelephonySettings::OFF
            },
            phone_number: Some(E164::from_stored("+12065550100".into())),
            create_time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            update_time: DateTime::from_timestamp(1_700_000_001, 0).unwrap(),
            sign_out_pending: Some(SignOutPending {
                oldest_sequence: 3,
                oldest_time: DateTime::from_timestamp(1_700_000_002, 0).unwrap(),
                latest_sequence: 7,
                latest_time: DateTime::from_timestamp(1_700_000_003, 0).unwrap(),
            }),
        }
    }

    #[test]
    fn answers_round_trip_with_their_version() {
        let text = encode(&user()).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["version"], VERSION);
        assert_eq!(decode::<UserView>(&text).unwrap(), user());
        let settings = user().settings;
        assert_eq!(
            decode::<TelephonySettings>(&encode(&settings).unwrap()).unwrap(),
            settings
        );
    }

    /// What servers before sign-out tracking knew of the user.
    fn user_without_pending() -> UserView {
        UserView {
            sign_out_pending: None,
            ..user()
        }
    }

    #[test]
    fn unversioned_answers_of_earlier_servers_are_still_read() {
        let plain = r#"{"account_id":"a","user_id":"u","email":"ann@example.com","display_name":"Ann","license_type":"PRO","settings":{"inbound_calling":false,"outbound_calling":false,"sms":true},"phone_number":"+12065550100","create_time":"2023-11-14T22:13:20Z","update_time":"2023-11-14T22:13:21Z"}"#;
        assert_eq!(decode::<UserView>(plain).unwrap(), user_without_pending());
        let row = r#"{"user":{"id":"u","account_id":"a","email":"ann@example.com","display_name":"Ann","license_type":"PRO","inbound_calling":false,"outbound_calling":false,"sms":true,"create_time":"2023-11-14T22:13:20Z","update_time":"2023-11-14T22:13:21Z"},"phone_number":"+12065550100"}"#;
        assert_eq!(decode::<UserView>(row).unwrap(), user_without_pending());
        let settings = r#"{"inbound_calling":true,"outbound_calling":false,"sms":false}"#;
        assert!(
            decode::<TelephonySettings>(settings)
                .unwrap()
                .inbound_calling
        );
    }

    fn number() -> NumberView {
        use crate::domain::phone_number::{NumberStatus, NumberType, ProductType};
        NumberView {
            e164: E164::from_stored("+12065550100".into()),
            country: "US".into(),
            number_type: NumberType::Local,
            product_type: ProductType::BusinessCalling,
            status: NumberStatus::Assigned,
            account_id: Some(AccountId::from_stored("a".into())),
            user_id: Some(UserId::from_stored("u".into())),
            associate_time: DateTime::from_timestamp(1_700_000_000, 0),
            calling_name: "Ann".into(),
            order_id: OrderId::from_stored("o".into()),
            create_time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            update_time: DateTime::from_timestamp(1_700_000_001, 0).unwrap(),
            deletion_time: None,
        }
    }

    #[test]
    fn batch_answers_round_trip_with_their_refusals_as_records() {
        let refusal = Refusal::from(DomainError::precondition(
            "PHONE_NUMBER_ASSIGNED",
            "+12065550100",
            "the number is assigned to another user",
        ));
        let users = vec![
            ItemResult::Done(user()),
            ItemResult::Refused(ItemRefusal::Record(refusal)),
            ItemResult::Refused(ItemRefusal::Record(Refusal::from(DomainError::invalid(
                "email",
                "is required",
            )))),
        ];
        let text = encode(&users).unwrap();
        let value = value_of(&text);
        assert_eq!(value["version"], 2);
        assert_eq!(value["answer"][1]["refusal"]["kind"], "FAILED_PRECONDITION");
        assert_eq!(
            value["answer"][1]["refusal"]["precondition"][0],
            "PHONE_NUMBER_ASSIGNED"
        );
        assert_eq!(decode::<Vec<ItemResult<UserView>>>(&text).unwrap(), users);
        let numbers = vec![ItemResult::Done(number())];
        let text = encode(&numbers).unwrap();
        assert_eq!(
            value_of(&text)["answer"][0]["resource"]["status"],
            "ASSIGNED"
        );
        assert_eq!(
            decode::<Vec<ItemResult<NumberView>>>(&text).unwrap(),
            numbers
        );
        let unknown = text.replace("\"version\":2", "\"version\":3");
        assert_eq!(
            decode::<Vec<ItemResult<NumberView>>>(&unknown),
            Err(Unreadable::UnknownVersion(3))
        );
    }

    #[test]
    fn batch_answers_of_version_1_keep_their_encoded_refusals() {
        let v1 = format!(
            r#"{{"version":1,"answer":[{{"error":null,"resource":{}}},{{"error":"CAUSAg==","resource":null}}]}}"#,
            serde_json::to_string(&number().to_stored()).unwrap()
        );
        let decoded = decode::<Vec<ItemResult<NumberView>>>(&v1).unwrap();
        assert_eq!(decoded[0], ItemResult::Done(number()));
        assert_eq!(
            decoded[1],
            ItemResult::Refused(ItemRefusal::Encoded(vec![8, 5, 18, 2]))
        );
        // Kept again as it was.
        let again = decode::<Vec<ItemResult<NumberView>>>(&encode(&decoded).unwrap()).unwrap();
        assert_eq!(again, decoded);
    }

    #[test]
    fn unversioned_batch_answers_of_rows_are_still_read() {
        let row = r#"[{"error":null,"resource":{"e164":"+12065550100","country":"US","number_type":"LOCAL","product_type":"BUSINESS_CALLING","status":"ASSIGNED","account_id":"a","user_id":"u","associate_time":"2023-11-14T22:13:20Z","calling_name":"Ann","order_id":"o","create_time":"2023-11-14T22:13:20Z","update_time":"2023-11-14T22:13:21Z","deletion_time":null}},{"error":"CAUSAg==","resource":null}]"#;
        let decoded = decode::<Vec<ItemResult<NumberView>>>(row).unwrap();
        assert_eq!(decoded[0], ItemResult::Done(number()));
        assert_eq!(
            decoded[1],
            ItemResult::Refused(ItemRefusal::Encoded(vec![8, 5, 18, 2]))
        );
        let unknown = row.replace("\"ASSIGNED\"", "\"LENT\"");
        assert!(matches!(
            decode::<Vec<ItemResult<NumberView>>>(&unknown),
            Err(Unreadable::Malformed(_))
        ));
    }

    fn value_of(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn an_unknown_version_or_form_is_unreadable_not_a_panic() {
        assert_eq!(
            decode::<UserView>(r#"{"version":99,"answer":{}}"#),
            Err(Unreadable::UnknownVersion(99))
        );
        for garbage in [
            "",
            "[]",
            r#"{"version":"1"}"#,
            r#"{"version":1}"#,
            r#"{"version":1,"answer":{"user_id":5}}"#,
            r#"{"something":"else"}"#,
        ] {
            assert!(
                matches!(decode::<UserView>(garbage), Err(Unreadable::Malformed(_))),
                "{garbage:?}"
            );
        }
    }
}
