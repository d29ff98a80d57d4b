//! Bulk work: 10,000 users created and given a number by the batch RPCs (BatchCreateUsers, then
//! BatchAssignPhoneNumbers, 1,000 items a request, as `telephony-admin import` sends them),
//! against the same rows sent as single CreateUser + AssignPhoneNumber calls from 32 callers at
//! once, in the same run on the same database. The target is five times the single calls' rows
//! per second.

use std::time::Instant;

use futures::{StreamExt, TryStreamExt};

use crate::Run;
use crate::api::{
    self, AssignPhoneNumberRequest, BatchAssignPhoneNumbersRequest, BatchCreateUsersRequest,
    Clients, LicenseType, batch_assign_phone_numbers_request, batch_create_users_request,
};
use crate::report::{Figure, Row, Target};
use crate::server::InProcess;

const SECTION: &str = "bulk";
const BATCH: usize = 1000;
const CALLERS: usize = 32;

pub async fn run(run: &Run) -> anyhow::Result<Vec<Row>> {
    let rows = if run.short { 1_000 } else { 10_000 };
    let database = run.target.create().await?;
    let service = InProcess::start(&database, |_| {}).await?;
    let clients = &service.clients;
    let single_numbers = api::numbers(425, rows);
    let batch_numbers = api::numbers(253, rows);
    for chunk in single_numbers
        .chunks(BATCH)
        .chain(batch_numbers.chunks(BATCH))
    {
        api::order_numbers(clients, chunk).await?;
    }

    let account_id = api::create_account(clients, "Single").await?;
    let started = Instant::now();
    futures::stream::iter(0..rows)
        .map(|i| single_row(clients, &account_id, i, &single_numbers[i]))
        .buffer_unordered(CALLERS)
        .try_collect::<Vec<()>>()
        .await?;
    let single = rows as f64 / started.elapsed().as_secs_f64();

    let account_id = api::create_account(clients, "Batch").await?;
    let started = Instant::now();
    for (chunk, numbers) in batch_numbers.chunks(BATCH).enumerate() {
        batch_rows(clients, &account_id, chunk * BATCH, numbers).await?;
    }
    let batch = rows as f64 / started.elapsed().as_secs_f64();
    println!("   single calls: {single:.0} rows/s; batches of {BATCH}: {batch:.0} rows/s");
    service.stop().await?;
    Ok(vec![
        Row::new(
            SECTION,
            format!("{rows} users created and assigned by batch, rows/s (vs single calls)"),
            Figure::PerSecond(batch),
        )
        .against(Figure::PerSecond(single))
        .target(Target::AtLeast(5.0)),
    ])
}

async fn single_row(
    clients: &Clients,
    account_id: &str,
    i: usize,
    number: &str,
) -> anyhow::Result<()> {
    let user_id = api::create_user(clients, account_id, &format!("single{i}@example.com")).await?;
    clients
        .telephony()
        .assign_phone_number(AssignPhoneNumberRequest {
            emergency_location_id: String::new(),
            account_id: account_id.to_owned(),
            user_id,
            e164_phone_number: number.to_owned(),
            request_id: String::new(),
        })
        .await?;
    Ok(())
}

async fn batch_rows(
    clients: &Clients,
    account_id: &str,
    first: usize,
    numbers: &[String],
) -> anyhow::Result<()> {
    let created = clients
        .users()
        .batch_create_users(BatchCreateUsersRequest {
            account_id: account_id.to_owned(),
            items: (first..first + numbers.len())
                .map(|i| batch_create_users_request::Item {
                    email: format!("batch{i}@example.com"),
                    display_name: "Bench".into(),
                    license_type: LicenseType::Pro as i32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .results;
    let users: Vec<String> = created
        .into_iter()
        .map(|r| r.user.map(|u| u.user_id))
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow::anyhow!("a user of the batch was not created"))?;
    let assigned = clients
        .telephony()
        .batch_assign_phone_numbers(BatchAssignPhoneNumbersRequest {
            account_id: account_id.to_owned(),
            items: users
                .into_iter()
                .zip(numbers)
                .map(
                    |(user_id, number)| batch_assign_phone_numbers_request::Item {
                        emergency_location_id: String::new(),
                        user_id,
                        e164_phone_number: number.clone(),
                    },
                )
                .collect(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .results;
    anyhow::ensure!(
        assigned.iter().all(|r| r.user.is_some()),
        "a number of the batch was not assigned"
    );
    Ok(())
}
