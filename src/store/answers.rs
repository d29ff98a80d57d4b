//! The stored form of an idempotent request's answer.
//!
//! A retry within the retention window may meet a record written by an earlier version of the
//! service (or, during a rolling upgrade, a later one). So an answer is stored as
//! `{"version": N, "answer": {…}}`, in structs of its own with every field spelled out: a field
//! added to a read model or a column added to a table changes neither, and a replay never
//! depends on a database row's shape. Records from before the version field are still read.
//! A record that cannot be read is answered explicitly (see [`Unreadable`]), never with a panic.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use sea_orm::ActiveEnum;

use super::batch::ItemResult;
use super::entities::enums;
use super::users::UserView;
use super::views::NumberView;
use crate::domain::sign_out::SignOutPending;
use crate::domain::telephony::TelephonySettings;
use crate::domain::user::LicenseType;

/// The version of the stored form this server writes.
pub(super) const VERSION: u64 = 1;

/// An answer that can be kept for a retry.
pub(super) trait Answer: Sized {
    /// The answer as stored at [`VERSION`].
    type Stored: Serialize + DeserializeOwned;

    fn to_stored(&self) -> Self::Stored;
    /// `None` when a value is not one this server knows.
    fn from_stored(stored: Self::Stored) -> Option<Self>;
    /// An answer stored before answers carried a version.
    fn from_unversioned(value: Value) -> Option<Self>;

    /// Visits every change-event sequence the answer carries (see `store::sequencer`: on
    /// PostgreSQL they are provisional until the events are numbered).
    fn visit_sequences(&mut self, _visit: &mut dyn FnMut(&mut u64)) {}
}

/// Why a stored answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unreadable {
    /// Written by a version of the service that this one does not know.
    UnknownVersion(u64),
    /// Not an answer of the expected form.
    Malformed(String),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownVersion(v) => write!(f, "stored in format version {v}, unknown here"),
            Self::Malformed(why) => write!(f, "malformed: {why}"),
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    version: u64,
    answer: &'a T,
}

pub(super) fn encode<A: Answer>(answer: &A) -> serde_json::Result<String> {
    serde_json::to_string(&Envelope {
        version: VERSION,
        answer: &answer.to_stored(),
    })
}

pub(super) fn decode<A: Answer>(text: &str) -> Result<A, Unreadable> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| Unreadable::Malformed(e.to_string()))?;
    let version = match value.get("version") {
        None => {
            return A::from_unversioned(value).ok_or_else(|| {
                Unreadable::Malformed("an unversioned answer of another form".into())
            });
        }
        Some(version) => version
            .as_u64()
            .ok_or_else(|| Unreadable::Malformed("the version is not a number".into()))?,
    };
    if version != VERSION {
        return Err(Unreadable::UnknownVersion(version));
    }
    let answer = value
        .get("answer")
        .cloned()
        .ok_or_else(|| Unreadable::Malformed("no answer".into()))?;
    let stored =
        serde_json::from_value(answer).map_err(|e| Unreadable::Malformed(e.to_string()))?;
    A::from_stored(stored).ok_or_else(|| Unreadable::Malformed("an unknown value".into()))
}

/// Calling and SMS permissions, as stored.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct StoredSettings {
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
pub(super) struct StoredUser {
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
pub(super) struct StoredSignOutPending {
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
            account_id: self.account_id.clone(),
            user_id: self.user_id.clone(),
            email: self.email.clone(),
            display_name: self.display_name.clone(),
            license_type: license_name(self.license_type),
            settings: self.settings.into(),
            phone_number: self.phone_number.clone(),
            create_time: self.create_time,
            update_time: self.update_time,
            sign_out_pending: self.sign_out_pending.map(Into::into),
        }
    }

    fn from_stored(s: StoredUser) -> Option<Self> {
        Some(UserView {
            account_id: s.account_id,
            user_id: s.user_id,
            email: s.email,
            display_name: s.display_name,
            license_type: license_type(&s.license_type)?,
            settings: s.settings.into(),
            phone_number: s.phone_number,
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
            account_id: user.account_id,
            user_id: user.id,
            email: user.email,
            display_name: user.display_name,
            license_type: license_type(&user.license_type)?,
            settings: TelephonySettings {
                inbound_calling: user.inbound_calling,
                outbound_calling: user.outbound_calling,
                sms: user.sms,
            },
            phone_number,
            create_time: user.create_time,
            update_time: user.update_time,
            sign_out_pending: None,
        })
    }
}

/// A number of the inventory, as stored (version 1; also the unversioned form, which was the
/// number's row).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredNumber {
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
            e164: self.e164.clone(),
            country: self.country.clone(),
            number_type: enums::NumberType::from(self.number_type).to_value(),
            product_type: enums::ProductType::from(self.product_type).to_value(),
            status: enums::NumberStatus::from(self.status).to_value(),
            account_id: self.account_id.clone(),
            user_id: self.user_id.clone(),
            associate_time: self.associate_time,
            calling_name: self.calling_name.clone(),
            order_id: self.order_id.clone(),
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
            e164: s.e164,
            country: s.country,
            account_id: s.account_id,
            user_id: s.user_id,
            associate_time: s.associate_time,
            calling_name: s.calling_name,
            order_id: s.order_id,
            create_time: s.create_time,
            update_time: s.update_time,
            deletion_time: s.deletion_time,
        })
    }

    fn from_unversioned(value: Value) -> Option<Self> {
        Self::from_stored(serde_json::from_value(value).ok()?)
    }
}

/// One item of a batch's answer, as stored: the item's encoded error (base64) or its resource.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredItem<S> {
    error: Option<String>,
    resource: Option<S>,
}

impl<T: Answer> Answer for Vec<ItemResult<T>> {
    type Stored = Vec<StoredItem<T::Stored>>;

    fn visit_sequences(&mut self, visit: &mut dyn FnMut(&mut u64)) {
        for resource in self.iter_mut().filter_map(|item| item.resource.as_mut()) {
            resource.visit_sequences(visit);
        }
    }

    fn to_stored(&self) -> Self::Stored {
        self.iter()
            .map(|item| StoredItem {
                error: item.error.clone(),
                resource: item.resource.as_ref().map(Answer::to_stored),
            })
            .collect()
    }

    fn from_stored(stored: Self::Stored) -> Option<Self> {
        stored
            .into_iter()
            .map(|item| {
                Some(ItemResult {
                    error: item.error,
                    resource: match item.resource {
                        Some(resource) => Some(T::from_stored(resource)?),
                        None => None,
                    },
                })
            })
            .collect()
    }

    fn from_unversioned(value: Value) -> Option<Self> {
        // Each resource in the unversioned form of its own kind.
        serde_json::from_value::<Vec<StoredItem<Value>>>(value)
            .ok()?
            .into_iter()
            .map(|item| {
                Some(ItemResult {
                    error: item.error,
                    resource: match item.resource {
                        Some(resource) => Some(T::from_unversioned(resource)?),
                        None => None,
                    },
                })
            })
            .collect()
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

    fn user() -> UserView {
        UserView {
            account_id: "a".into(),
            user_id: "u".into(),
            email: "ann@example.com".into(),
            display_name: "Ann".into(),
            license_type: LicenseType::Pro,
            settings: TelephonySettings {
                sms: true,
                ..TelephonySettings::OFF
            },
            phone_number: Some("+12065550100".into()),
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
            e164: "+12065550100".into(),
            country: "US".into(),
            number_type: NumberType::Local,
            product_type: ProductType::BusinessCalling,
            status: NumberStatus::Assigned,
            account_id: Some("a".into()),
            user_id: Some("u".into()),
            associate_time: DateTime::from_timestamp(1_700_000_000, 0),
            calling_name: "Ann".into(),
            order_id: "o".into(),
            create_time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            update_time: DateTime::from_timestamp(1_700_000_001, 0).unwrap(),
            deletion_time: None,
        }
    }

    #[test]
    fn batch_answers_round_trip_with_their_item_errors() {
        let users = vec![
            ItemResult {
                error: None,
                resource: Some(user()),
            },
            ItemResult {
                error: Some("CAUSAg==".into()),
                resource: None,
            },
        ];
        let text = encode(&users).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["version"], VERSION);
        assert_eq!(decode::<Vec<ItemResult<UserView>>>(&text).unwrap(), users);
        let numbers = vec![ItemResult {
            error: None,
            resource: Some(number()),
        }];
        let text = encode(&numbers).unwrap();
        assert_eq!(
            value_of(&text)["answer"][0]["resource"]["status"],
            "ASSIGNED"
        );
        assert_eq!(
            decode::<Vec<ItemResult<NumberView>>>(&text).unwrap(),
            numbers
        );
    }

    #[test]
    fn unversioned_batch_answers_of_rows_are_still_read() {
        let row = r#"[{"error":null,"resource":{"e164":"+12065550100","country":"US","number_type":"LOCAL","product_type":"BUSINESS_CALLING","status":"ASSIGNED","account_id":"a","user_id":"u","associate_time":"2023-11-14T22:13:20Z","calling_name":"Ann","order_id":"o","create_time":"2023-11-14T22:13:20Z","update_time":"2023-11-14T22:13:21Z","deletion_time":null}},{"error":"CAUSAg==","resource":null}]"#;
        let decoded = decode::<Vec<ItemResult<NumberView>>>(row).unwrap();
        assert_eq!(decoded[0].resource, Some(number()));
        assert_eq!(decoded[1].error.as_deref(), Some("CAUSAg=="));
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
