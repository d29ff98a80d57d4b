//! `telephony-admin import users|assignments|settings|locations FILE.csv`: the file's rows in
//! batches through the batch RPCs (locations: one call per row, see [`super::import_locations`]),
//! with a result CSV.

use std::collections::HashMap;
use std::io::IsTerminal;

use anyhow::{Context, bail};
use csv::StringRecord;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::client::{Clients, resending};
use super::import_locations::{LocationRow, send_each};
use super::rows::{Columns, code_name, read, results_path, write_results};
use super::{ImportArgs, ImportKind, ImportOptions};
use crate::proto::{self, LicenseType, TelephonySettings};

/// What one good row asks for.
enum Item {
    User(proto::batch_create_users_request::Item),
    Assignment(proto::batch_assign_phone_numbers_request::Item),
    Settings(proto::batch_update_telephony_settings_request::Item),
    Location(Box<LocationRow>),
}

pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let (kind, options) = match args.what {
        ImportKind::Users(o) => ("users", o),
        ImportKind::Assignments(o) => ("assignments", o),
        ImportKind::Settings(o) => ("settings", o),
        ImportKind::Locations(o) => ("locations", o),
    };
    if options.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if kind == "locations" && options.atomic {
        bail!(
            "import locations cannot be --atomic: each row is its own call (check the file with --dry-run first)"
        );
    }
    let (header, mut rows, records) = read(&options.file)?;
    let malformed = rows.iter().filter(|r| r.outcome.is_some()).count();
    for row in rows.iter().filter(|r| r.outcome.is_some()) {
        let (_, message) = row.outcome.as_ref().expect("malformed");
        eprintln!("{message}");
    }
    if options.atomic && malformed > 0 {
        write_results(&results_path(&options), &header, &rows)?;
        bail!("{malformed} malformed rows and --atomic: nothing was sent");
    }
    let clients = Clients::connect(&options.connection).await?;
    let columns = Columns::new(&header);
    let users = if kind == "users" || kind == "locations" {
        HashMap::new()
    } else {
        clients
            .all_users(&options.account)
            .await?
            .into_iter()
            .map(|u| (u.email.to_lowercase(), u.user_id))
            .collect()
    };
    let mut items = Vec::new();
    for (index, record) in records {
        let item = match kind {
            "users" => columns.user(&record).map(Item::User),
            "assignments" => columns.assignment(&record, &users).map(Item::Assignment),
            "locations" => columns
                .location(&record)
                .map(|row| Item::Location(Box::new(row))),
            _ => columns.settings(&record, &users).map(Item::Settings),
        };
        match item {
            Ok(item) => items.push((index, item)),
            Err(e) => rows[index].outcome = Some(("INVALID_ARGUMENT".into(), e.to_string())),
        }
    }
    let refused = items.len() + malformed < rows.len();
    if options.atomic && refused {
        write_results(&results_path(&options), &header, &rows)?;
        bail!("some rows are invalid and --atomic: nothing was sent");
    }
    let progress = progress_bar(items.len() as u64);
    if kind == "locations" {
        let locations: Vec<(usize, LocationRow)> = items
            .into_iter()
            .filter_map(|(index, item)| match item {
                Item::Location(location) => Some((index, *location)),
                _ => None,
            })
            .collect();
        send_each(&clients, &options, &locations, &mut rows, &progress).await?;
        items = Vec::new();
    }
    for chunk in items.chunks(options.batch_size) {
        let statuses = send(&clients, &options, chunk).await?;
        for ((index, _), status) in chunk.iter().zip(statuses) {
            rows[*index].outcome = Some(status);
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    let path = results_path(&options);
    write_results(&path, &header, &rows)?;
    let failed = rows
        .iter()
        .filter(|r| r.outcome.as_ref().is_some_and(|(s, _)| s != "OK"))
        .count();
    let verb = if options.dry_run {
        "checked"
    } else {
        "imported"
    };
    eprintln!(
        "{} rows {verb}: {} OK, {failed} failed (of which {malformed} malformed); results in {}",
        rows.len(),
        rows.len() - failed,
        path.display()
    );
    if failed > 0 {
        bail!("{failed} rows failed; see {}", path.display());
    }
    Ok(())
}

impl Columns {
    /// The row's user: its user_id column, or the user with its email.
    fn user_id(
        &self,
        record: &StringRecord,
        users: &HashMap<String, String>,
    ) -> anyhow::Result<String> {
        if let Some(id) = self.get(record, "user_id").filter(|id| !id.is_empty()) {
            return Ok(id.to_owned());
        }
        let email = self
            .get(record, "email")
            .context("the file needs a column user_id or email")?;
        users
            .get(&email.to_lowercase())
            .cloned()
            .with_context(|| format!("no user with email {email} in the account"))
    }

    fn user(
        &self,
        record: &StringRecord,
    ) -> anyhow::Result<proto::batch_create_users_request::Item> {
        let license = self.required(record, "license_type")?;
        let license_type = LicenseType::from_str_name(&license.to_uppercase())
            .or_else(|| {
                LicenseType::from_str_name(&format!("LICENSE_TYPE_{}", license.to_uppercase()))
            })
            .filter(|l| *l != LicenseType::Unspecified)
            .with_context(|| {
                format!("license_type {license:?} is not BASIC, PLUS, PRO or PRO_TRIAL")
            })?;
        Ok(proto::batch_create_users_request::Item {
            email: self.required(record, "email")?.to_owned(),
            display_name: self.required(record, "display_name")?.to_owned(),
            license_type: license_type as i32,
            // Optional: the user's own location.
            emergency_location_id: self
                .get(record, "emergency_location_id")
                .unwrap_or_default()
                .to_owned(),
        })
    }

    fn assignment(
        &self,
        record: &StringRecord,
        users: &HashMap<String, String>,
    ) -> anyhow::Result<proto::batch_assign_phone_numbers_request::Item> {
        Ok(proto::batch_assign_phone_numbers_request::Item {
            user_id: self.user_id(record, users)?,
            e164_phone_number: self.required(record, "e164_phone_number")?.to_owned(),
            // Optional: the location the user gets with the number.
            emergency_location_id: self
                .get(record, "emergency_location_id")
                .unwrap_or_default()
                .to_owned(),
        })
    }

    fn settings(
        &self,
        record: &StringRecord,
        users: &HashMap<String, String>,
    ) -> anyhow::Result<proto::batch_update_telephony_settings_request::Item> {
        let mut settings = TelephonySettings::default();
        let mut paths = Vec::new();
        for (name, slot) in [
            ("inbound_calling", &mut settings.inbound_calling),
            ("outbound_calling", &mut settings.outbound_calling),
            ("sms", &mut settings.sms),
        ] {
            if let Some(value) = self.get(record, name) {
                *slot = match value.to_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    other => bail!("{name} {other:?} is not true or false"),
                };
                paths.push(name.to_owned());
            }
        }
        if paths.is_empty() {
            bail!("the file needs a column inbound_calling, outbound_calling or sms");
        }
        Ok(proto::batch_update_telephony_settings_request::Item {
            user_id: self.user_id(record, users)?,
            telephony_settings: Some(settings),
            update_mask: Some(prost_types::FieldMask { paths }),
        })
    }
}

/// Sends one batch; one (status, message) per item.
async fn send(
    clients: &Clients,
    options: &ImportOptions,
    chunk: &[(usize, Item)],
) -> anyhow::Result<Vec<(String, String)>> {
    let account_id = options.account.clone();
    let (validate_only, atomic) = (options.dry_run, options.atomic);
    let request_id = uuid::Uuid::new_v4().to_string();
    let failed = |s: tonic::Status| anyhow::anyhow!("the batch was refused: {}", s.message());
    // Each request is built once: a resend (after a throttle, or while the server restarts)
    // carries the same request_id, so a batch that did take effect is answered from its kept
    // answer, never applied twice.
    let statuses: Vec<Option<tonic_types::pb::Status>> = match &chunk[0].1 {
        Item::Location(_) => bail!("locations are sent one row at a time, not in batches"),
        Item::User(_) => {
            let request = proto::BatchCreateUsersRequest {
                account_id,
                items: chunk
                    .iter()
                    .filter_map(|(_, i)| match i {
                        Item::User(u) => Some(u.clone()),
                        _ => None,
                    })
                    .collect(),
                validate_only,
                atomic,
                request_id,
            };
            resending(|| {
                let (mut users, request) = (clients.users(), request.clone());
                async move { users.batch_create_users(request).await }
            })
            .await
            .map_err(failed)?
            .into_inner()
            .results
            .into_iter()
            .map(|r| r.status)
            .collect()
        }
        Item::Assignment(_) => {
            let request = proto::BatchAssignPhoneNumbersRequest {
                account_id,
                items: chunk
                    .iter()
                    .filter_map(|(_, i)| match i {
                        Item::Assignment(a) => Some(a.clone()),
                        _ => None,
                    })
                    .collect(),
                validate_only,
                atomic,
                request_id,
            };
            resending(|| {
                let (mut telephony, request) = (clients.telephony(), request.clone());
                async move { telephony.batch_assign_phone_numbers(request).await }
            })
            .await
            .map_err(failed)?
            .into_inner()
            .results
            .into_iter()
            .map(|r| r.status)
            .collect()
        }
        Item::Settings(_) => {
            let request = proto::BatchUpdateTelephonySettingsRequest {
                account_id,
                items: chunk
                    .iter()
                    .filter_map(|(_, i)| match i {
                        Item::Settings(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
                validate_only,
                atomic,
                request_id,
            };
            resending(|| {
                let (mut telephony, request) = (clients.telephony(), request.clone());
                async move { telephony.batch_update_telephony_settings(request).await }
            })
            .await
            .map_err(failed)?
            .into_inner()
            .results
            .into_iter()
            .map(|r| r.status)
            .collect()
        }
    };
    Ok(statuses
        .into_iter()
        .map(|status| {
            let status = status.unwrap_or_default();
            (code_name(status.code), status.message)
        })
        .collect())
}

/// A bar on a terminal; nothing otherwise.
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} rows ({per_sec}, {eta})")
    {
        bar.set_style(style);
    }
    bar
}
