//! The `telephony-admin` command: `serve`, `migrate`, `keys`, `import`, `export`, `backup`,
//! `restore`, `new-log-epoch` and `rotate-secrets-key`. The command line is defined here, from the library's settings
//! (`config`) and commands (`cli`, `backup`); all the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use telephony_admin::cli::{ExportArgs, ImportArgs};
use telephony_admin::config::{ServeSettings, StorageSettings};
use telephony_admin::domain::ids::{AccountId, KeyId};
use telephony_admin::keys::{self, Role, Scope};
use telephony_admin::startup::{Application, connect_store};
use telephony_admin::store::StoreOptions;
use telephony_admin::telemetry::LogFormat;
use telephony_admin::{domain, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "telephony-admin",
    version,
    about = "Administers business-calling phone numbers over gRPC"
)]
struct Cli {
    #[command(flatten)]
    storage: StorageSettings,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC server.
    Serve(Box<ServeSettings>),
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Import a CSV file through a running service's batch RPCs (users, assignments, settings).
    Import(Box<ImportArgs>),
    /// Export numbers, users, assignments or changes from a running service to stdout.
    Export(Box<ExportArgs>),
    /// Copy the SQLite database to a new file, consistently, while the service runs.
    Backup {
        /// The backup file to write (it must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Put a backup in place of the SQLite database, with the service stopped, and give the
    /// change log a new identity.
    Restore {
        /// The backup file (from `backup`).
        #[arg(long)]
        from: PathBuf,
    },
    /// Give the change log a new identity, after the database was restored by other means
    /// (PostgreSQL: pg_restore or a base backup), with every replica stopped.
    NewLogEpoch,
    /// Put a new key first in the secrets key file (created if missing) and seal every stored
    /// webhook secret with it; older keys stay in the file for older backups. Running servers
    /// read the file again when they meet the new key.
    RotateSecretsKey,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print its secret (shown only this once).
    Create {
        #[arg(long)]
        name: String,
        /// What the key may do.
        #[arg(long, value_enum)]
        role: Role,
        /// Limit the key to one account (default: the whole organisation).
        #[arg(long)]
        account: Option<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key at once.
    Revoke { id: String },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs what it does; the one-shot commands only what goes wrong.
    let telemetry = match &cli.command {
        Command::Serve(settings) => telemetry::init(
            settings.log_format,
            "info",
            settings.otlp_endpoint.as_deref(),
        ),
        _ => telemetry::init(LogFormat::Text, "warn", None),
    };
    // Flushes logs and exports the last spans when main returns.
    let _telemetry = match telemetry {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(settings) => {
            Application::build(&cli.storage, *settings)
                .await?
                .run_until_stopped()
                .await
        }
        Command::Migrate => {
            let store = connect_store(&cli.storage, StoreOptions::default()).await?;
            store.migrate().await?;
            println!("database schema is up to date");
            Ok(())
        }
        Command::Import(args) => telephony_admin::cli::import::run(*args).await,
        Command::Export(args) => telephony_admin::cli::export::run(*args).await,
        Command::Backup { to } => {
            let backup = telephony_admin::backup::backup(&cli.storage, &to).await?;
            println!(
                "backed up to {} ({} bytes): change log {} through event {}",
                to.display(),
                backup.bytes,
                backup.log_id,
                backup.last_sequence
            );
            Ok(())
        }
        Command::Restore { from } => {
            let restored = telephony_admin::backup::restore(&cli.storage, &from).await?;
            println!("restored from {}", from.display());
            print_log_replaced(&restored);
            Ok(())
        }
        Command::NewLogEpoch => {
            print_log_replaced(&telephony_admin::backup::new_log_epoch(&cli.storage).await?);
            Ok(())
        }
        Command::RotateSecretsKey => {
            let rotation = telephony_admin::startup::rotate_secrets_key(&cli.storage).await?;
            println!(
                "new secrets key {}: {} webhook secrets sealed with it{}",
                rotation.key_id,
                rotation.resealed.sealed,
                match rotation.resealed.unreadable {
                    0 => String::new(),
                    n => format!(
                        "; {n} could not be opened (sealed with a key the file lacks) and were left as they are"
                    ),
                }
            );
            Ok(())
        }
        Command::Keys { command } => {
            let store = connect_store(&cli.storage, StoreOptions::default()).await?;
            store.migrate().await?;
            keys_command(&store, command).await
        }
    }
}

fn print_log_replaced(replaced: &telephony_admin::store::LogReplaced) {
    println!(
        "change log {} replaced by {} at event {}: consumers resuming with the old log_id get CHANGE_LOG_REPLACED; {} deliveries resume after event {}",
        replaced.previous_log_id,
        replaced.log_id,
        replaced.last_sequence,
        replaced.deliveries_reset,
        replaced.last_sequence
    );
}

async fn keys_command(
    store: &telephony_admin::store::Store,
    command: KeysCommand,
) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            name,
            role,
            account,
        } => {
            let scope = match account {
                Some(id) => {
                    let id = AccountId::parse("--account", &id)?;
                    store.accounts().get(&id).await?;
                    Scope::Account(id)
                }
                None => Scope::Organisation,
            };
            let name = domain::account::parse_display_text("--name", &name, 100)?;
            let (record, secret) = keys::create_key(store, &name, role, &scope, None).await?;
            println!("id:     {}", record.id);
            println!("name:   {}", record.name);
            println!("role:   {}", record.role.as_str());
            println!(
                "scope:  {}",
                record
                    .account_id
                    .as_ref()
                    .map_or("organisation", AccountId::as_str)
            );
            println!("secret: {secret}");
            println!("\nThe secret is shown only this once.");
        }
        KeysCommand::List => {
            println!(
                "{:<36}  {:<15}  {:<36}  {:<20}  name",
                "id", "role", "scope", "revoked"
            );
            for key in store.keys().list().await? {
                println!(
                    "{:<36}  {:<15}  {:<36}  {:<20}  {}",
                    key.id,
                    key.role.as_str(),
                    key.account_id
                        .as_ref()
                        .map_or("organisation", AccountId::as_str),
                    key.revoke_time
                        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                        .unwrap_or_else(|| "-".into()),
                    key.name
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let id = KeyId::parse("id", &id)?;
            let key = store.keys().revoke(&id).await?;
            println!("revoked {} ({})", key.id, key.name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    fn keys_create(role: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from([
            "telephony-admin",
            "keys",
            "create",
            "--name",
            "ops",
            "--role",
            role,
        ])
    }

    #[test]
    fn the_keys_command_takes_each_role_by_its_stored_name() {
        for role in Role::value_variants() {
            let cli = keys_create(role.as_str()).expect("a known role parses");
            match cli.command {
                Command::Keys {
                    command: KeysCommand::Create { role: parsed, .. },
                } => assert_eq!(parsed, *role),
                other => panic!("parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn the_keys_command_refuses_an_unknown_role_and_names_the_known_ones() {
        let error = keys_create("owner").expect_err("an unknown role");
        assert_eq!(error.kind(), clap::error::ErrorKind::InvalidValue);
        let text = error.to_string();
        assert!(text.contains("admin") && text.contains("viewer"), "{text}");
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
