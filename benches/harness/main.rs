//! The benchmark harness: measures the service against anchors taken in the same run, on the
//! same machine, with the same client and concurrency, and prints one table of ratios.
//!
//! ```text
//! cargo bench --bench harness                      # every section, SQLite
//! cargo bench --bench harness -- reads writes      # some sections
//! cargo bench --bench harness -- --short           # shorter windows, smaller fixtures
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench harness
//! ```
//!
//! Sections are listed in [`SECTIONS`]; a new one is a module in `sections/` and one entry there.

mod api;
mod database;
mod echo;
mod load;
mod report;
mod sections;
mod server;

use std::time::Instant;

use database::Target;
use load::Budget;
use report::{Machine, Row};

/// What a section gets: where its databases live and how long to measure.
pub struct Run {
    pub target: Target,
    pub budget: Budget,
    pub short: bool,
}

type SectionFn = for<'a> fn(&'a Run) -> futures::future::BoxFuture<'a, anyhow::Result<Vec<Row>>>;

/// Every section, in the order they run.
const SECTIONS: &[(&str, &str, SectionFn)] = &[
    (
        "reads",
        "GetUser, GetTelephonySettings, ListPhoneNumbers vs a bare tonic echo",
        |run| Box::pin(sections::reads::run(run)),
    ),
    (
        "writes",
        "Assign+Unassign pairs, UpdateTelephonySettings, LogoutUser vs raw commits",
        |run| Box::pin(sections::writes::run(run)),
    ),
    (
        "replicas",
        "PostgreSQL: LogoutUser from two instances on one database vs one; lock waits",
        |run| Box::pin(sections::replicas::run(run)),
    ),
    (
        "watch",
        "one change to 10,000 WatchChanges streams; memory per idle watcher",
        |run| Box::pin(sections::watch::run(run)),
    ),
    (
        "listing",
        "ListPhoneNumbers at 1,000,000 numbers vs 10,000, every filter combination",
        |run| Box::pin(sections::listing::run(run)),
    ),
    (
        "bulk",
        "10,000 users created and assigned by batch RPCs vs single RPCs",
        |run| Box::pin(sections::bulk::run(run)),
    ),
    (
        "startup",
        "cold start to SERVING and idle RSS of the release binary",
        |run| Box::pin(sections::startup::run(run)),
    ),
];

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; other flags than `--short` are ignored likewise.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let short = args.iter().any(|a| a == "--short");
    let chosen: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    if let Some(unknown) = chosen
        .iter()
        .find(|name| !SECTIONS.iter().any(|(section, ..)| section == *name))
    {
        eprintln!("unknown section {unknown}; the sections are:");
        for (name, about, _) in SECTIONS {
            eprintln!("  {name:<8} {about}");
        }
        std::process::exit(2);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        quiet_service_logs();
        let run = Run {
            target: Target::from_env(),
            budget: Budget::new(short),
            short,
        };
        let machine = Machine::probe(run.target.describe().await?);
        println!("{machine}");
        let began = Instant::now();
        let mut rows = Vec::new();
        let mut failed = Vec::new();
        for (name, about, section) in SECTIONS {
            if !chosen.is_empty() && !chosen.contains(name) {
                continue;
            }
            println!("\n== {name}: {about}");
            let started = Instant::now();
            match section(&run).await {
                Ok(measured) => rows.extend(measured),
                Err(error) => {
                    eprintln!("section {name} failed: {error:#}");
                    failed.push(*name);
                }
            }
            println!("   ({:.0} s)", started.elapsed().as_secs_f64());
        }
        println!();
        report::print_table(&rows);
        println!("\n{machine}");
        println!(
            "Run took {:.0} s{}.",
            began.elapsed().as_secs_f64(),
            if short { " (--short)" } else { "" }
        );
        if !failed.is_empty() {
            anyhow::bail!("sections failed: {}", failed.join(", "));
        }
        Ok(())
    })
}

/// The in-process service formats its one line per RPC as the binary would, into a sink: the
/// cost of logging is measured, the output is not printed.
fn quiet_service_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_target(false)
        .with_writer(std::io::sink)
        .try_init();
}
