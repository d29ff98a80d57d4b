//! `import` and `export`: bulk work from the command line, as a client of a running service
//! (its gRPC API, with an API key), never through the database.
//!
//! Imports read a CSV file (the `csv` crate), send it in batches through the batch RPCs, show a
//! progress bar on a terminal, and write a result CSV: each input row, then its status and
//! message. A malformed row (wrong column count, bad encoding) is named by its line; the other
//! rows still go through unless `--atomic` is given. Exports write CSV or JSON lines to stdout.

pub mod client;
pub mod export;
pub mod import;
mod import_locations;
mod rows;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Where the service is and how to reach it.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The service's gRPC endpoint: http://HOST:PORT, or https:// with --ca-cert.
    #[arg(
        long,
        env = "TELEPHONY_ADMIN_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    pub endpoint: String,

    /// The API key to call with.
    #[arg(long, env = "TELEPHONY_ADMIN_KEY", hide_env_values = true)]
    pub key: String,

    /// PEM file of the CA that signed the server's certificate (for https://).
    #[arg(long, env = "TELEPHONY_ADMIN_CA_CERT")]
    pub ca_cert: Option<PathBuf>,

    /// The name the server's certificate is checked against (default: the endpoint's host).
    #[arg(long, env = "TELEPHONY_ADMIN_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub what: ImportKind,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ImportKind {
    /// Users. Columns: email, display_name, license_type (BASIC, PLUS, PRO, PRO_TRIAL), and
    /// optionally emergency_location_id (the user's own location).
    Users(ImportOptions),
    /// Number assignments. Columns: email or user_id, e164_phone_number, and optionally
    /// emergency_location_id (the location the user gets with the number).
    Assignments(ImportOptions),
    /// Calling and SMS permissions. Columns: email or user_id, then any of inbound_calling,
    /// outbound_calling, sms (true/false); only the columns present are changed.
    Settings(ImportOptions),
    /// Emergency locations with their addresses, as `export locations` writes them. Columns:
    /// country, and any of company_name, house_number, house_number_suffix, pre_directional,
    /// street_name, street_suffix, post_directional, city, state_or_province, postal_code,
    /// latitude, longitude, place. Rows with the same address share one. One call per row:
    /// no --atomic.
    Locations(ImportOptions),
}

#[derive(Debug, Clone, Args)]
pub struct ImportOptions {
    /// The CSV file, with a header row.
    pub file: PathBuf,

    /// The account the rows belong to.
    #[arg(long)]
    pub account: String,

    #[command(flatten)]
    pub connection: Connection,

    /// Check every row against the current state (and the rows before it) without changing
    /// anything.
    #[arg(long)]
    pub dry_run: bool,

    /// All or nothing: a malformed row stops the import before anything is sent, and each batch
    /// is applied only if all its rows succeed.
    #[arg(long)]
    pub atomic: bool,

    /// Where the result CSV goes (default: FILE with `.results.csv` appended).
    #[arg(long)]
    pub results: Option<PathBuf>,

    /// Rows per batch request (at most the server's --max-batch-items).
    #[arg(long, default_value_t = crate::defaults::MAX_BATCH_ITEMS)]
    pub batch_size: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// What to export.
    #[arg(value_enum)]
    pub what: ExportKind,

    /// The account (required for users, assignments and locations; a filter for numbers and
    /// changes).
    #[arg(long)]
    pub account: Option<String>,

    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,

    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportKind {
    Numbers,
    Users,
    Assignments,
    Changes,
    /// An account's emergency locations, each with its address and what the validator found.
    Locations,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}
