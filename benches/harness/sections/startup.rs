//! Cold start of the release binary on a migrated database: from spawning `telephony-admin
//! serve` to the first grpc.health.v1 Check that answers SERVING; then its idle resident memory.

use std::time::Duration;

use crate::Run;
use crate::report::{Figure, Row, Target};
use crate::server::Process;

const SECTION: &str = "startup";

pub async fn run(run: &Run) -> anyhow::Result<Vec<Row>> {
    let starts = if run.short { 3 } else { 7 };
    let database = run.target.create().await?;
    Process::migrate(&database).await?;
    let secret = telephony_admin::keys::generate_secret();
    // The first start creates the bootstrap key; it is not counted.
    let (first, _) = Process::serve(&database, &secret, &[]).await?;
    first.stop().await?;

    let mut times = Vec::with_capacity(starts);
    let mut idle_rss = 0;
    for i in 0..starts {
        let (server, took) = Process::serve(&database, &secret, &[]).await?;
        times.push(took);
        if i + 1 == starts {
            tokio::time::sleep(Duration::from_secs(1)).await;
            idle_rss = server.rss_kib()?;
        }
        server.stop().await?;
    }
    times.sort_unstable();
    let median = times[times.len() / 2];
    Ok(vec![
        Row::new(
            SECTION,
            format!("cold start to SERVING, median of {starts}"),
            Figure::Latency(median),
        )
        .target(Target::AtMost(100.0)),
        Row::new(
            SECTION,
            "idle RSS after start",
            Figure::MiB(idle_rss as f64 / 1024.0),
        )
        .target(Target::AtMost(30.0)),
    ])
}
