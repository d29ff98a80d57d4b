//! Which secrets keys a database is opened with, and the `rotate-secrets-key` command.
//!
//! - SQLite: the key file given, else `<database>.secrets-key` beside the database; created on
//!   first start, as the first API key is. An in-memory database gets a key of its own.
//! - PostgreSQL: the key file given, which every replica shares; it must exist (replicas on
//!   several machines must not each invent one), and is required once any webhook exists.
//!
//! A secret stored in the clear by an older version is sealed at start.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};

use super::connect_store;
use crate::config::StorageSettings;
use crate::secrets_key::{self, SecretsKeyring};
use crate::store::{Resealed, Store, StoreOptions};

/// The keys `storage`'s database is opened with (`None`: PostgreSQL without a key file).
pub fn secrets_keyring(storage: &StorageSettings) -> anyhow::Result<Option<Arc<SecretsKeyring>>> {
    let keyring = match (storage.secrets_key_path(), storage.is_sqlite()) {
        (Some(path), true) => {
            create_parent(&path)?;
            let (keyring, created) = SecretsKeyring::load_or_create(&path)?;
            if created {
                tracing::info!(path = %path.display(), "secrets key file created: keep it private, apart from the database's backups");
            }
            keyring
        }
        (Some(path), false) => {
            if !path.exists() {
                bail!(
                    "the secrets key file {} does not exist: create it once with `telephony-admin rotate-secrets-key --secrets-key-file {}` and give the same file to every replica",
                    path.display(),
                    path.display()
                );
            }
            SecretsKeyring::load(&path)?
        }
        (None, true) => SecretsKeyring::ephemeral(),
        (None, false) => return Ok(None),
    };
    Ok(Some(Arc::new(keyring)))
}

fn create_parent(path: &Path) -> anyhow::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display())),
        _ => Ok(()),
    }
}

/// Seals the secrets an older version stored in the clear; refuses a database with webhooks
/// when there is no key to open their secrets with.
pub(super) async fn seal_stored_secrets(
    store: &Store,
    keys: Option<Arc<SecretsKeyring>>,
) -> anyhow::Result<()> {
    let Some(keys) = keys else {
        let webhooks = store.webhooks().count().await?;
        if webhooks > 0 {
            bail!(
                "{webhooks} webhooks exist, and their secrets are sealed at rest: give --secrets-key-file (the same file on every replica; docs/operations.md)"
            );
        }
        return Ok(());
    };
    let resealed = store
        .webhooks()
        .reseal(keys, false)
        .await
        .context("sealing the webhook secrets stored in the clear")?;
    if resealed.sealed > 0 {
        tracing::info!(
            secrets = resealed.sealed,
            "sealed the webhook secrets an older version stored in the clear"
        );
    }
    if resealed.unreadable > 0 {
        tracing::warn!(
            secrets = resealed.unreadable,
            "webhook secrets could not be opened to be sealed"
        );
    }
    Ok(())
}

/// What `rotate-secrets-key` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub key_id: String,
    pub resealed: Resealed,
}

/// Puts a new key first in `storage`'s key file (creating the file if needed) and seals every
/// stored secret with it. Running servers read the file again when they meet the new key.
pub async fn rotate_secrets_key(storage: &StorageSettings) -> anyhow::Result<Rotation> {
    let Some(path) = storage.secrets_key_path() else {
        bail!("an in-memory database has no key file to rotate; give --secrets-key-file");
    };
    create_parent(&path)?;
    let key_id = secrets_key::add_key(&path)?;
    let keys = Arc::new(SecretsKeyring::load(&path)?);
    let options = StoreOptions {
        secrets: Some(keys.clone()),
        ..StoreOptions::default()
    };
    let store = connect_store(storage, options).await?;
    store.migrate().await?;
    let resealed = store.webhooks().reseal(keys, true).await;
    store.close().await?;
    Ok(Rotation {
        key_id,
        resealed: resealed?,
    })
}
