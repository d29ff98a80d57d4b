//! API keys: secrets, their hashes, roles and scopes. A secret is 256 random bits, shown once;
//! only its SHA-256 hash is stored (a fast hash is enough for secrets of that entropy).

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::store::{ApiKeyRecord, NewApiKey, Store};

/// Marks a string as one of our secrets (and helps secret scanners find leaked ones).
const SECRET_PREFIX: &str = "tak_";

use crate::domain::ids::AccountId;
pub use crate::domain::role::Role;

/// Where a key may act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Organisation,
    Account(AccountId),
}

pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", hex::encode(bytes))
}

/// The SHA-256 digest of a secret: what identifies a key in memory.
pub fn secret_digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The digest as stored: lower-case hex.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(secret_digest(secret))
}

/// Creates a key and returns it with its secret, which is never stored.
pub async fn create_key(
    store: &Store,
    name: &str,
    role: Role,
    scope: &Scope,
    secret: Option<String>,
) -> Result<(ApiKeyRecord, String)> {
    let secret = secret.unwrap_or_else(generate_secret);
    let record = store
        .keys()
        .create(NewApiKey {
            name: name.to_owned(),
            role,
            account_id: match scope {
                Scope::Organisation => None,
                Scope::Account(id) => Some(id.clone()),
            },
            secret_hash: hash_secret(&secret),
        })
        .await?;
    Ok((record, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_hashed() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), SECRET_PREFIX.len() + 64);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), a);
        assert_eq!(hash_secret(&a).len(), 64);
    }
}
