//! `telephony-admin import locations FILE.csv`: each row an emergency location, with its address
//! (the columns `export locations` writes). Rows with the same address share one: the first
//! creates it with its location, in one call, and the others are put on it. An address the
//! account already has is used as it is, and a location it already has (the same address and
//! place) is ALREADY_EXISTS: importing a file twice creates nothing the second time. A dry run checks
//! every row on the server (`validate_only`): the address's validation, the place, the account.
//!
//! There is no batch RPC for locations, so each row is its own call and `--atomic` is refused:
//! run with `--dry-run` first.

use std::collections::HashMap;

use anyhow::Context;
use csv::StringRecord;
use indicatif::ProgressBar;
use prost::Message;

use super::ImportOptions;
use super::client::{Clients, patiently};
use super::rows::{Columns, Row, code_name};
use crate::proto;

/// What one good row asks for.
#[derive(Debug, Clone)]
pub(super) struct LocationRow {
    address: proto::CivicAddress,
    place: String,
}

impl Columns {
    pub(super) fn location(&self, record: &StringRecord) -> anyhow::Result<LocationRow> {
        self.required(record, "country")?;
        let text = |name: &str| self.get(record, name).unwrap_or_default().to_owned();
        let coordinate = |name: &str| -> anyhow::Result<Option<f64>> {
            match self.get(record, name).unwrap_or_default() {
                "" => Ok(None),
                raw => raw
                    .parse()
                    .map(Some)
                    .with_context(|| format!("{name} {raw:?} is not a number of degrees")),
            }
        };
        Ok(LocationRow {
            // The columns `export locations` writes.
            address: proto::CivicAddress {
                country: text("country"),
                company_name: text("company_name"),
                house_number: text("house_number"),
                house_number_suffix: text("house_number_suffix"),
                pre_directional: text("pre_directional"),
                street_name: text("street_name"),
                street_suffix: text("street_suffix"),
                post_directional: text("post_directional"),
                city: text("city"),
                state_or_province: text("state_or_province"),
                postal_code: text("postal_code"),
                latitude: coordinate("latitude")?,
                longitude: coordinate("longitude")?,
            },
            place: text("place"),
        })
    }
}

/// The account's addresses (by their encoded fields) and locations (by address and place).
type Known = (HashMap<Vec<u8>, String>, HashMap<(Vec<u8>, String), String>);

/// What the account already has, every page of it.
async fn known(clients: &Clients, account: &str) -> anyhow::Result<Known> {
    let (mut addresses, mut locations) = (HashMap::new(), HashMap::new());
    let known = clients.all_locations(account).await?;
    for location in known {
        let address = location.address.and_then(|a| a.address).unwrap_or_default();
        let key = address.encode_to_vec();
        addresses.insert(key.clone(), location.address_id);
        locations.insert((key, location.place), location.location_id);
    }
    Ok((addresses, locations))
}

/// Sends each row, in file order; each row's outcome goes into `rows`.
pub(super) async fn send_each(
    clients: &Clients,
    options: &ImportOptions,
    items: &[(usize, LocationRow)],
    rows: &mut [Row],
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    // The address each distinct address became: the account's, or one this import created.
    let (mut created, existing) = known(clients, &options.account).await?;
    for (index, row) in items {
        let key = row.address.encode_to_vec();
        if let Some(location_id) = existing.get(&(key.clone(), row.place.clone())) {
            rows[*index].outcome = Some((
                "ALREADY_EXISTS".to_owned(),
                format!("the account has this location: {location_id}"),
            ));
            progress.inc(1);
            continue;
        }
        let address_id = created.get(&key).cloned().unwrap_or_default();
        let request = if address_id.is_empty() {
            proto::CreateEmergencyLocationRequest {
                account_id: options.account.clone(),
                address: Some(row.address.clone()),
                place: row.place.clone(),
                validate_only: options.dry_run,
                ..Default::default()
            }
        } else {
            proto::CreateEmergencyLocationRequest {
                address_id,
                place: row.place.clone(),
                ..Default::default()
            }
        };
        let answer = patiently(|| {
            let (mut locations, request) = (clients.emergency_locations(), request.clone());
            async move { locations.create_emergency_location(request).await }
        })
        .await;
        rows[*index].outcome = Some(match answer {
            Ok(location) => {
                let location = location.into_inner();
                if !options.dry_run {
                    created.insert(key, location.address_id.clone());
                }
                ("OK".to_owned(), describe(&location, options.dry_run))
            }
            Err(status) => (code_name(status.code() as i32), status.message().to_owned()),
        });
        progress.inc(1);
    }
    Ok(())
}

/// `location L on address A (STRUCTURE_VALID)`, or what a dry run found.
fn describe(location: &proto::EmergencyLocation, dry_run: bool) -> String {
    let address = location.address.clone().unwrap_or_default();
    let state = proto::ValidationState::try_from(address.validation_state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("VALIDATION_STATE_")
                .to_owned()
        })
        .unwrap_or_default();
    let problems: Vec<String> = address
        .validation_problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.description))
        .collect();
    let validation = if problems.is_empty() {
        state
    } else {
        format!("{state}: {}", problems.join("; "))
    };
    if dry_run {
        format!("would be created; the address is {validation}")
    } else {
        format!(
            "location {} on address {} ({validation})",
            location.location_id, location.address_id
        )
    }
}
