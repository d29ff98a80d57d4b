//! The `telephony-admin` command: `serve`, `migrate`, `keys`, `import` and `export`. All the work
//! is in the library.

use std::process::ExitCode;

use clap::Parser;
use telephony_admin::config::{Cli, Command, KeysCommand, LogFormat};
use telephony_admin::keys::{self, Scope};
use telephony_admin::startup::{Application, connect_store};
use telephony_admin::store::StoreOptions;
use telephony_admin::{domain, telemetry};

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
        Command::Keys { command } => {
            let store = connect_store(&cli.storage, StoreOptions::default()).await?;
            store.migrate().await?;
            keys_command(&store, command).await
        }
    }
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
                    let id = domain::ids::AccountId::parse("--account", &id)?;
                    store.accounts().get(&id).await?;
                    Scope::Account(id.into())
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
                record.account_id.as_deref().unwrap_or("organisation")
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
                    key.account_id.as_deref().unwrap_or("organisation"),
                    key.revoke_time
                        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                        .unwrap_or_else(|| "-".into()),
                    key.name
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let key = store.keys().revoke(&id).await?;
            println!("revoked {} ({})", key.id, key.name);
        }
    }
    Ok(())
}
