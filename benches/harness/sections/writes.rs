//! Writes against the raw commit rate of the same database: AssignPhoneNumber followed by
//! UnassignPhoneNumber for 32 users at once, UpdateTelephonySettings and LogoutUser from 32
//! callers at once; and each with one call in flight. The anchor is a loop of single-row UPDATE
//! transactions with the service's settings (see `database::BenchDatabase::raw_commits`); on
//! SQLite also the same loop through rusqlite (the disk without a driver's worker thread), and
//! on PostgreSQL single-row UPDATEs from as many connections as the pool (`pgbench -N`'s
//! shape).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tonic::transport::Channel;

use crate::Run;
use crate::api::{
    self, AssignPhoneNumberRequest, Bearer, LogoutUserRequest, TelephonyServiceClient,
    TelephonySettings, UnassignPhoneNumberRequest, UpdateTelephonySettingsRequest,
    UserServiceClient,
};
use crate::load::{Measured, closed_loop, one_in_flight};
use crate::report::{Figure, Row, Target};
use crate::server::InProcess;

const SECTION: &str = "writes";
const CONNECTIONS: usize = 4;
const STREAMS: usize = 8;
const USERS: usize = CONNECTIONS * STREAMS;

struct Fixture {
    account_id: String,
    users: Vec<String>,
    numbers: Vec<String>,
    /// Each user's last SMS setting, flipped by every update so that each one changes something.
    sms: Vec<AtomicBool>,
    bearer: Bearer,
}

#[derive(Clone, Copy)]
enum Write {
    AssignUnassignPair,
    UpdateTelephonySettings,
    LogoutUser,
}

impl Write {
    fn name(self) -> &'static str {
        match self {
            Self::AssignUnassignPair => "Assign+Unassign pairs",
            Self::UpdateTelephonySettings => "UpdateTelephonySettings",
            Self::LogoutUser => "LogoutUser",
        }
    }

    async fn call(self, f: &Fixture, channel: Channel, user: usize) -> Result<(), tonic::Status> {
        let (account_id, user_id) = (f.account_id.clone(), f.users[user].clone());
        match self {
            Self::AssignUnassignPair => {
                assign(f, channel.clone(), user).await?;
                TelephonyServiceClient::with_interceptor(channel, f.bearer.clone())
                    .unassign_phone_number(UnassignPhoneNumberRequest {
                        account_id,
                        user_id,
                        confirm: true,
                        request_id: String::new(),
                    })
                    .await?;
            }
            Self::UpdateTelephonySettings => {
                let sms = !f.sms[user].fetch_xor(true, Ordering::Relaxed);
                TelephonyServiceClient::with_interceptor(channel, f.bearer.clone())
                    .update_telephony_settings(UpdateTelephonySettingsRequest {
                        account_id,
                        user_id,
                        telephony_settings: Some(TelephonySettings {
                            inbound_calling: false,
                            outbound_calling: false,
                            sms,
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["sms".into()],
                        }),
                        request_id: String::new(),
                    })
                    .await?;
            }
            Self::LogoutUser => {
                UserServiceClient::with_interceptor(channel, f.bearer.clone())
                    .logout_user(LogoutUserRequest {
                        account_id,
                        user_id,
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

async fn assign(f: &Fixture, channel: Channel, user: usize) -> Result<(), tonic::Status> {
    TelephonyServiceClient::with_interceptor(channel, f.bearer.clone())
        .assign_phone_number(AssignPhoneNumberRequest {
            emergency_location_id: String::new(),
            account_id: f.account_id.clone(),
            user_id: f.users[user].clone(),
            e164_phone_number: f.numbers[user].clone(),
            request_id: String::new(),
        })
        .await
        .map(drop)
}

pub async fn run(run: &Run) -> anyhow::Result<Vec<Row>> {
    let database = run.target.create().await?;
    let service = InProcess::start(&database, |_| {}).await?;
    let clients = &service.clients;
    let account_id = api::create_account(clients, "Writers").await?;
    let mut users = Vec::with_capacity(USERS);
    for i in 0..USERS {
        users
            .push(api::create_user(clients, &account_id, &format!("writer{i}@example.com")).await?);
    }
    let numbers = api::numbers(425, USERS);
    api::order_numbers(clients, &numbers).await?;
    let fixture = Arc::new(Fixture {
        account_id,
        users,
        numbers,
        sms: (0..USERS).map(|_| AtomicBool::new(false)).collect(),
        bearer: clients.bearer.clone(),
    });

    let raw = database.raw_commits(run.budget).await?;
    println!(
        "   raw commits: {:.0}/s, p50 {:.2} ms",
        raw.per_second(),
        raw.percentile(50.0).as_secs_f64() * 1000.0
    );
    let anchors = Anchors {
        disk: database.disk_commits(run.budget)?,
        parallel: database
            .parallel_commits(telephony_admin::defaults::DB_POOL_SIZE, USERS, run.budget)
            .await?,
        raw,
    };
    if let Some(disk) = &anchors.disk {
        println!("   disk commits (rusqlite): {:.0}/s", disk.per_second());
    }
    if let Some(parallel) = anchors.parallel {
        println!("   parallel commits ({USERS} callers): {parallel:.0}/s");
    }
    let channels = api::connect(service.address, CONNECTIONS).await?;
    let mut rows = Vec::new();
    for write in [
        Write::AssignUnassignPair,
        Write::UpdateTelephonySettings,
        Write::LogoutUser,
    ] {
        if let Write::UpdateTelephonySettings = write {
            // Settings belong to a user with a number.
            for user in 0..USERS {
                assign(&fixture, channels[0].clone(), user).await?;
            }
        }
        let on_service = {
            let fixture = fixture.clone();
            move |channel: Channel, user: usize| {
                let fixture = fixture.clone();
                async move { write.call(&fixture, channel, user).await }
            }
        };
        let load = closed_loop(&channels, STREAMS, run.budget, on_service.clone()).await?;
        let alone = one_in_flight(run.budget, 20, 100_000, |_| {
            let call = on_service(channels[0].clone(), 0);
            async move { Ok(call.await?) }
        })
        .await?;
        rows.extend(rows_for(write, &load, &alone, &anchors));
    }
    service.stop().await?;
    Ok(rows)
}

/// What writes are compared against, measured in the same run.
struct Anchors {
    /// The sqlx loop of single-row commits, one at a time.
    raw: Measured,
    /// SQLite: the same loop through rusqlite.
    disk: Option<Measured>,
    /// PostgreSQL: commits per second from as many connections as the pool.
    parallel: Option<f64>,
}

fn rows_for(write: Write, load: &Measured, alone: &Measured, anchors: &Anchors) -> Vec<Row> {
    let raw = &anchors.raw;
    let name = write.name();
    let mut stricter = Vec::new();
    if let (Some(disk), Write::AssignUnassignPair) = (&anchors.disk, write) {
        stricter.push(
            Row::new(
                SECTION,
                format!("{name}/s, {USERS} callers, vs rusqlite commits"),
                Figure::PerSecond(load.per_second()),
            )
            .against(Figure::PerSecond(disk.per_second()))
            .target(Target::AtLeast(0.5)),
        );
    }
    if let (Some(parallel), Write::LogoutUser | Write::UpdateTelephonySettings) =
        (anchors.parallel, write)
    {
        stricter.push(
            Row::new(
                SECTION,
                format!("{name}/s, {USERS} callers, vs parallel commits"),
                Figure::PerSecond(load.per_second()),
            )
            .against(Figure::PerSecond(parallel))
            .target(Target::AtLeast(0.6)),
        );
    }
    let mut rate = Row::new(
        SECTION,
        format!("{name}/s, {USERS} callers"),
        Figure::PerSecond(load.per_second()),
    )
    .against(Figure::PerSecond(raw.per_second()));
    match write {
        Write::AssignUnassignPair => rate = rate.target(Target::AtLeast(0.5)),
        Write::LogoutUser => rate = rate.target(Target::AtLeast(1.0)),
        Write::UpdateTelephonySettings => {}
    }
    let latency = |label: &str, measured: &Measured, p: f64| {
        Row::new(
            SECTION,
            format!("{name}, p{p} {label}"),
            Figure::Latency(measured.percentile(p)),
        )
        .against(Figure::Latency(raw.percentile(p)))
    };
    // On PostgreSQL, one write alone costs at most three raw commits (a pair is two writes).
    let mut alone_p50 = latency("one in flight", alone, 50.0);
    if anchors.parallel.is_some() {
        alone_p50 = alone_p50.target(Target::AtMost(match write {
            Write::AssignUnassignPair => 6.0,
            Write::UpdateTelephonySettings | Write::LogoutUser => 3.0,
        }));
    }
    let mut rows = vec![
        rate,
        alone_p50,
        latency("one in flight", alone, 99.0),
        latency("under load", load, 50.0),
        latency("under load", load, 99.0),
    ];
    rows.extend(stricter);
    rows
}
