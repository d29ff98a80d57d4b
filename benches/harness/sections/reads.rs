//! Unary reads against a bare tonic echo answering a message of the same encoded size, with the
//! same client: throughput at 4 connections × 16 calls in flight, and latency under that load
//! and with one call in flight. ListPhoneNumbers runs with pages of 50 and of 1, so that a fixed
//! wait on larger answers (such as Nagle's algorithm against delayed ACKs) shows.

use std::sync::Arc;

use prost::Message;
use tonic::transport::Channel;

use crate::Run;
use crate::api::{
    self, Bearer, GetTelephonySettingsRequest, GetUserRequest, ListPhoneNumbersRequest,
    PhoneNumberServiceClient, TelephonyServiceClient, UserServiceClient,
};
use crate::database::Backend;
use crate::echo::{self, Payload};
use crate::load::{Measured, closed_loop, one_in_flight};
use crate::report::{Figure, Row, Target};
use crate::server::InProcess;

const SECTION: &str = "reads";
const CONNECTIONS: usize = 4;
const STREAMS: usize = 16;
/// Numbers in the inventory, so that a page of 50 is full.
const INVENTORY: usize = 100;

#[derive(Clone, Copy)]
enum Read {
    GetUser,
    GetTelephonySettings,
    ListPhoneNumbers { page_size: i32 },
}

struct Fixture {
    account_id: String,
    user_id: String,
    bearer: Bearer,
}

impl Read {
    fn name(self) -> String {
        match self {
            Self::GetUser => "GetUser".into(),
            Self::GetTelephonySettings => "GetTelephonySettings".into(),
            Self::ListPhoneNumbers { page_size } => format!("ListPhoneNumbers page {page_size}"),
        }
    }

    fn get_user(f: &Fixture) -> GetUserRequest {
        GetUserRequest {
            account_id: f.account_id.clone(),
            user_id: f.user_id.clone(),
        }
    }

    fn get_settings(f: &Fixture) -> GetTelephonySettingsRequest {
        GetTelephonySettingsRequest {
            account_id: f.account_id.clone(),
            user_id: f.user_id.clone(),
        }
    }

    fn list(page_size: i32) -> ListPhoneNumbersRequest {
        ListPhoneNumbersRequest {
            page_size,
            ..Default::default()
        }
    }

    fn request_size(self, f: &Fixture) -> usize {
        match self {
            Self::GetUser => Self::get_user(f).encoded_len(),
            Self::GetTelephonySettings => Self::get_settings(f).encoded_len(),
            Self::ListPhoneNumbers { page_size } => Self::list(page_size).encoded_len(),
        }
    }

    /// One call; the encoded size of the answer.
    async fn call(self, f: &Fixture, channel: Channel) -> Result<usize, tonic::Status> {
        let bearer = f.bearer.clone();
        Ok(match self {
            Self::GetUser => UserServiceClient::with_interceptor(channel, bearer)
                .get_user(Self::get_user(f))
                .await?
                .into_inner()
                .encoded_len(),
            Self::GetTelephonySettings => TelephonyServiceClient::with_interceptor(channel, bearer)
                .get_telephony_settings(Self::get_settings(f))
                .await?
                .into_inner()
                .encoded_len(),
            Self::ListPhoneNumbers { page_size } => {
                PhoneNumberServiceClient::with_interceptor(channel, bearer)
                    .list_phone_numbers(Self::list(page_size))
                    .await?
                    .into_inner()
                    .encoded_len()
            }
        })
    }
}

pub async fn run(run: &Run) -> anyhow::Result<Vec<Row>> {
    let database = run.target.create().await?;
    let service = InProcess::start(&database, |_| {}).await?;
    let clients = &service.clients;
    let (account_id, user_id) =
        api::user_with_number(clients, "reader@example.com", "+12065550100", None).await?;
    api::order_numbers(clients, &api::numbers(425, INVENTORY - 1)).await?;
    let fixture = Arc::new(Fixture {
        account_id,
        user_id,
        bearer: clients.bearer.clone(),
    });

    let mut rows = Vec::new();
    let mut page_latency = Vec::new();
    // PostgreSQL: the database's own rate for the same read, measured before the service's.
    let database_reads = database
        .prepared_reads(
            &fixture.user_id,
            telephony_admin::defaults::DB_POOL_SIZE,
            CONNECTIONS * STREAMS,
            run.budget,
        )
        .await?;
    for read in [
        Read::GetUser,
        Read::GetTelephonySettings,
        Read::ListPhoneNumbers { page_size: 50 },
        Read::ListPhoneNumbers { page_size: 1 },
    ] {
        let measured = measure(run, &service, &fixture, read).await?;
        if let Some(anchor) = database_reads
            && !matches!(read, Read::ListPhoneNumbers { page_size: 1 })
        {
            let mut row = Row::new(
                SECTION,
                format!(
                    "{}, calls/s at {CONNECTIONS}x{STREAMS} vs prepared PK SELECTs",
                    read.name()
                ),
                Figure::PerSecond(measured.service_load.per_second()),
            )
            .against(Figure::PerSecond(anchor));
            if let Read::GetUser = read {
                row = row.target(Target::AtLeast(0.6));
            }
            rows.push(row);
        }
        if let Read::ListPhoneNumbers { .. } = read {
            page_latency.push(measured.service_alone.percentile(50.0));
        }
        rows.extend(measured.rows(read, run.target.backend()));
    }
    if let [page_50, page_1] = page_latency[..] {
        rows.push(
            Row::new(
                SECTION,
                "ListPhoneNumbers page 50 vs page 1, p50 one in flight",
                Figure::Latency(page_50),
            )
            .against(Figure::Latency(page_1))
            .target(Target::AtMost(2.0)),
        );
    }
    rows.push(metrics_cost(run, &service, &fixture).await?);
    service.stop().await?;
    Ok(rows)
}

/// GetUser throughput with `--metrics-listen` on, against the same service without metrics. The
/// two are measured in alternating windows, three each, and their medians compared, so that a
/// slower stretch of this shared machine does not fall on one side only. The per-RPC trace
/// layer (not exporting) is on in both.
async fn metrics_cost(run: &Run, plain: &InProcess, fixture: &Arc<Fixture>) -> anyhow::Result<Row> {
    let database = run.target.create().await?;
    let metered = InProcess::start(&database, |settings| {
        settings.metrics_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await?;
    let (account_id, user_id) = api::user_with_number(
        &metered.clients,
        "metered@example.com",
        "+12065550199",
        None,
    )
    .await?;
    let metered_fixture = Arc::new(Fixture {
        account_id,
        user_id,
        bearer: metered.clients.bearer.clone(),
    });
    let get_user = |fixture: &Arc<Fixture>| {
        let fixture = fixture.clone();
        move |channel: Channel, _| {
            let fixture = fixture.clone();
            async move { Read::GetUser.call(&fixture, channel).await.map(drop) }
        }
    };
    let plain_channels = api::connect(plain.address, CONNECTIONS).await?;
    let metered_channels = api::connect(metered.address, CONNECTIONS).await?;
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let plain = closed_loop(&plain_channels, STREAMS, run.budget, get_user(fixture)).await?;
        without.push(plain.per_second());
        let metered = closed_loop(
            &metered_channels,
            STREAMS,
            run.budget,
            get_user(&metered_fixture),
        )
        .await?;
        with.push(metered.per_second());
    }
    metered.stop().await?;
    Ok(Row::new(
        SECTION,
        format!("GetUser with metrics on vs off, calls/s at {CONNECTIONS}x{STREAMS}"),
        Figure::PerSecond(median(&mut with)),
    )
    .against(Figure::PerSecond(median(&mut without)))
    .target(Target::AtLeast(0.95)))
}

/// Alternating windows of each side in [`metrics_cost`].
const ROUNDS: usize = 3;

fn median(rates: &mut [f64]) -> f64 {
    rates.sort_unstable_by(f64::total_cmp);
    rates[rates.len() / 2]
}

struct Compared {
    service_load: Measured,
    echo_load: Measured,
    service_alone: Measured,
    echo_alone: Measured,
}

async fn measure(
    run: &Run,
    service: &InProcess,
    fixture: &Arc<Fixture>,
    read: Read,
) -> anyhow::Result<Compared> {
    let first = read.call(fixture, service.clients.channel.clone()).await?;
    let echo = echo::start(first).await?;
    let request = Payload::of_encoded_size(read.request_size(fixture));
    println!(
        "   {}: request {} B, answer {first} B",
        read.name(),
        request.encoded_len()
    );

    let service_channels = api::connect(service.address, CONNECTIONS).await?;
    let echo_channels = api::connect(echo.address, CONNECTIONS).await?;
    let on_service = {
        let fixture = fixture.clone();
        move |channel: Channel, _| {
            let fixture = fixture.clone();
            async move { read.call(&fixture, channel).await.map(drop) }
        }
    };
    let on_echo = {
        let request = request.clone();
        move |channel: Channel, _| echo::call(channel, request.clone())
    };
    let service_load =
        closed_loop(&service_channels, STREAMS, run.budget, on_service.clone()).await?;
    let echo_load = closed_loop(&echo_channels, STREAMS, run.budget, on_echo.clone()).await?;
    let (service_channel, echo_channel) = (service_channels[0].clone(), echo_channels[0].clone());
    let service_alone = one_in_flight(run.budget, 20, 100_000, |_| {
        let call = on_service(service_channel.clone(), 0);
        async move { Ok(call.await?) }
    })
    .await?;
    let echo_alone = one_in_flight(run.budget, 20, 100_000, |_| {
        let call = on_echo(echo_channel.clone(), 0);
        async move { Ok(call.await?) }
    })
    .await?;
    Ok(Compared {
        service_load,
        echo_load,
        service_alone,
        echo_alone,
    })
}

impl Compared {
    fn rows(&self, read: Read, backend: Backend) -> Vec<Row> {
        let name = read.name();
        let mut throughput = Row::new(
            SECTION,
            format!("{name}, calls/s at {CONNECTIONS}x{STREAMS}"),
            Figure::PerSecond(self.service_load.per_second()),
        )
        .against(Figure::PerSecond(self.echo_load.per_second()));
        // On SQLite a read is answered in the process: the echo is the bar. On PostgreSQL the
        // database's own rate is (the row above).
        match (read, backend) {
            (Read::GetUser, Backend::Sqlite) => {
                throughput = throughput.target(Target::AtLeast(0.7));
            }
            (Read::ListPhoneNumbers { page_size: 50 }, Backend::Sqlite) => {
                throughput = throughput.target(Target::AtLeast(0.3));
            }
            _ => {}
        }
        let latency = |label: &str, service: &Measured, echo: &Measured, p: f64| {
            Row::new(
                SECTION,
                format!("{name}, p{p} {label}"),
                Figure::Latency(service.percentile(p)),
            )
            .against(Figure::Latency(echo.percentile(p)))
        };
        vec![
            throughput,
            latency("one in flight", &self.service_alone, &self.echo_alone, 50.0),
            latency("one in flight", &self.service_alone, &self.echo_alone, 99.0),
            latency("under load", &self.service_load, &self.echo_load, 50.0),
            latency("under load", &self.service_load, &self.echo_load, 99.0),
        ]
    }
}
