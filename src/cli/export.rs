//! `telephony-admin export numbers|users|assignments|changes|locations`: every page of a list RPC, as CSV
//! (with a header) or JSON lines, to stdout.

use std::io::Write;

use anyhow::{Context, bail};

use super::client::{Clients, every_page};
use super::{ExportArgs, ExportKind, Format};
use crate::proto;

/// One exported row: column names and values, in order.
type Record = Vec<(&'static str, String)>;

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let clients = Clients::connect(&args.connection).await?;
    let account = args.account.clone().unwrap_or_default();
    let need_account = || {
        if account.is_empty() {
            bail!("--account is required for this export");
        }
        Ok(())
    };
    let records: Vec<Record> = match args.what {
        ExportKind::Numbers => numbers(&clients, &account).await?,
        ExportKind::Users => {
            need_account()?;
            clients
                .all_users(&account)
                .await?
                .into_iter()
                .map(user_record)
                .collect()
        }
        ExportKind::Assignments => {
            need_account()?;
            // The same columns `import assignments` reads.
            clients
                .all_users(&account)
                .await?
                .into_iter()
                .filter(|u| !u.primary_phone_number.is_empty())
                .map(|u| {
                    vec![
                        ("email", u.email),
                        ("user_id", u.user_id),
                        ("e164_phone_number", u.primary_phone_number),
                    ]
                })
                .collect()
        }
        ExportKind::Changes => changes(&clients, &account).await?,
        ExportKind::Locations => {
            need_account()?;
            locations(&clients, &account).await?
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.format {
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(&mut out);
            if let Some(first) = records.first() {
                writer.write_record(first.iter().map(|(name, _)| *name))?;
            }
            for record in &records {
                writer.write_record(record.iter().map(|(_, value)| value))?;
            }
            writer.flush()?;
        }
        Format::Jsonl => {
            for record in records {
                let object: serde_json::Map<String, serde_json::Value> = record
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), serde_json::Value::String(value)))
                    .collect();
                writeln!(out, "{}", serde_json::Value::Object(object))?;
            }
        }
    }
    out.flush().context("cannot write to stdout")
}

fn time(t: Option<prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

fn user_record(u: proto::User) -> Record {
    let settings = u.telephony_settings.unwrap_or_default();
    let license = proto::LicenseType::try_from(u.license_type)
        .map(|l| {
            l.as_str_name()
                .trim_start_matches("LICENSE_TYPE_")
                .to_owned()
        })
        .unwrap_or_default();
    vec![
        ("user_id", u.user_id),
        ("email", u.email),
        ("display_name", u.display_name),
        ("license_type", license),
        ("e164_phone_number", u.primary_phone_number),
        ("inbound_calling", settings.inbound_calling.to_string()),
        ("outbound_calling", settings.outbound_calling.to_string()),
        ("sms", settings.sms.to_string()),
        ("create_time", time(u.create_time)),
    ]
}

async fn numbers(clients: &Clients, account: &str) -> anyhow::Result<Vec<Record>> {
    let numbers = every_page("ListPhoneNumbers", |page_token| {
        let mut client = clients.numbers();
        let request = proto::ListPhoneNumbersRequest {
            account_id: account.to_owned(),
            page_size: 1000,
            page_token,
            ..Default::default()
        };
        async move {
            let page = client.list_phone_numbers(request).await?.into_inner();
            Ok((page.phone_numbers, page.next_page_token))
        }
    })
    .await?;
    let name = |value: &str, prefix: &str| value.trim_start_matches(prefix).to_owned();
    Ok(numbers
        .into_iter()
        .map(|n| {
            let association = n.association.unwrap_or_default();
            vec![
                ("e164_phone_number", n.e164_phone_number),
                ("country", n.country),
                (
                    "type",
                    proto::PhoneNumberType::try_from(n.r#type)
                        .map(|t| name(t.as_str_name(), "PHONE_NUMBER_TYPE_"))
                        .unwrap_or_default(),
                ),
                (
                    "product_type",
                    proto::PhoneNumberProductType::try_from(n.product_type)
                        .map(|t| name(t.as_str_name(), "PHONE_NUMBER_PRODUCT_TYPE_"))
                        .unwrap_or_default(),
                ),
                (
                    "status",
                    proto::PhoneNumberStatus::try_from(n.status)
                        .map(|t| name(t.as_str_name(), "PHONE_NUMBER_STATUS_"))
                        .unwrap_or_default(),
                ),
                ("account_id", association.account_id),
                ("user_id", association.user_id),
                ("calling_name", n.calling_name),
            ]
        })
        .collect())
}

async fn changes(clients: &Clients, account: &str) -> anyhow::Result<Vec<Record>> {
    let events = every_page("ListChanges", |page_token| {
        let mut client = clients.changes();
        let request = proto::ListChangesRequest {
            account_id: account.to_owned(),
            page_size: 1000,
            page_token,
            ..Default::default()
        };
        async move {
            let page = client.list_changes(request).await?.into_inner();
            Ok((page.events, page.next_page_token))
        }
    })
    .await?;
    Ok(events
        .into_iter()
        .map(|e| {
            let settings = e.telephony_settings.unwrap_or_default();
            vec![
                ("sequence", e.sequence.to_string()),
                ("occur_time", time(e.occur_time)),
                ("account_id", e.account_id),
                ("user_id", e.user_id),
                (
                    "kind",
                    proto::ChangeKind::try_from(e.kind)
                        .map(|k| {
                            k.as_str_name()
                                .trim_start_matches("CHANGE_KIND_")
                                .to_owned()
                        })
                        // A kind this version does not know: its number.
                        .unwrap_or_else(|_| e.kind.to_string()),
                ),
                ("e164_phone_number", e.e164_phone_number),
                ("inbound_calling", settings.inbound_calling.to_string()),
                ("outbound_calling", settings.outbound_calling.to_string()),
                ("sms", settings.sms.to_string()),
                ("actor", e.actor),
            ]
        })
        .collect())
}

/// Every emergency location of the account with its address, following page tokens.
async fn locations(clients: &Clients, account: &str) -> anyhow::Result<Vec<Record>> {
    let locations = clients.all_locations(account).await?;
    Ok(locations.into_iter().map(location_record).collect())
}

fn location_record(l: proto::EmergencyLocation) -> Record {
    let stored = l.address.unwrap_or_default();
    let state = proto::ValidationState::try_from(stored.validation_state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("VALIDATION_STATE_")
                .to_owned()
        })
        .unwrap_or_default();
    let a = stored.address.unwrap_or_default();
    let coordinate = |c: Option<f64>| c.map(|c| c.to_string()).unwrap_or_default();
    vec![
        ("location_id", l.location_id),
        ("place", l.place),
        ("address_id", l.address_id),
        ("country", a.country),
        ("company_name", a.company_name),
        ("house_number", a.house_number),
        ("house_number_suffix", a.house_number_suffix),
        ("pre_directional", a.pre_directional),
        ("street_name", a.street_name),
        ("street_suffix", a.street_suffix),
        ("post_directional", a.post_directional),
        ("city", a.city),
        ("state_or_province", a.state_or_province),
        ("postal_code", a.postal_code),
        ("latitude", coordinate(a.latitude)),
        ("longitude", coordinate(a.longitude)),
        ("validation_state", state),
    ]
}
