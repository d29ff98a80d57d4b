//! Secrets at rest: the webhook signing secrets are stored sealed with AES-256-GCM, so that
//! whoever reads the database or a backup of it cannot forge deliveries.
//!
//! The keys live in a key file (`--secrets-key-file`; for the default SQLite database, one is
//! created beside it on first start): one base64 key of 32 bytes per line, `#` comments. The
//! first key seals; every key opens, so that values sealed before a rotation stay readable.
//! A stored value names the key that sealed it: `sealed:v1:<key id>:<base64 of nonce,
//! ciphertext and tag>`, the key id being derived from the key. The value is bound to what it
//! belongs to (e.g. the webhook's id), so a sealed secret copied to another row does not open.
//!
//! A value not in that form is a secret stored in the clear by an older version: it is read as
//! it is, and sealed at the next start.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

/// The start of every sealed value.
pub const SEALED_PREFIX: &str = "sealed:v1:";
const KEY_LEN: usize = 32;
/// At most this often the key file is read again for a key this process lacks (one another
/// process added by a rotation).
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

const FILE_HEADER: &str = "\
# telephony-admin secrets key file: the first key seals, every key opens.
# Keep it private, apart from the database's backups, and the same on every replica.
";

/// Why a stored secret could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "the secret is sealed with key {0}, which the secrets key file lacks (--secrets-key-file)"
    )]
    UnknownKey(String),
    #[error("the sealed secret is damaged, or belongs to another record")]
    Damaged,
    #[error("the secret is sealed, and this server has no secrets key (--secrets-key-file)")]
    NoKeyring,
}

struct Key {
    id: String,
    key: LessSafeKey,
}

impl Key {
    fn new(bytes: &[u8]) -> anyhow::Result<Self> {
        ensure!(bytes.len() == KEY_LEN, "a secrets key is {KEY_LEN} bytes");
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| anyhow::anyhow!("not an AES-256 key"))?;
        Ok(Self {
            id: key_id(bytes),
            key: LessSafeKey::new(key),
        })
    }
}

/// The key's id: a short digest, so that the same key has the same id on every replica.
fn key_id(bytes: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(b"telephony-admin secrets key")
        .chain_update(bytes)
        .finalize();
    hex::encode(&digest[..4])
}

/// The secrets keys of this process: the first seals, every one opens.
pub struct SecretsKeyring {
    keys: RwLock<Vec<Key>>,
    /// Where they were read from (none for an in-memory database's keys).
    path: Option<PathBuf>,
    last_read: Mutex<Instant>,
}

impl fmt::Debug for SecretsKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsKeyring")
            .field("path", &self.path)
            .field("active_key", &self.active_key_id())
            .finish_non_exhaustive()
    }
}

impl SecretsKeyring {
    /// Reads the key file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let keys = read_key_file(path)?;
        Ok(Self::new(keys, Some(path.to_owned())))
    }

    /// Reads the key file at `path`, creating it with a new key if it does not exist; says
    /// whether it was created.
    pub fn load_or_create(path: &Path) -> anyhow::Result<(Self, bool)> {
        match write_new_key_file(path, &[new_key_bytes()]) {
            Ok(()) => Ok((Self::load(path)?, true)),
            // Another process created it first, or it was there already.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                Ok((Self::load(path)?, false))
            }
            Err(error) => Err(error)
                .with_context(|| format!("cannot create the secrets key file {}", path.display())),
        }
    }

    /// One new key, kept in memory only: for an in-memory database, which dies with the process.
    pub fn ephemeral() -> Self {
        let key = Key::new(&new_key_bytes()).expect("a new key has the right length");
        Self::new(vec![key], None)
    }

    fn new(keys: Vec<Key>, path: Option<PathBuf>) -> Self {
        Self {
            keys: RwLock::new(keys),
            path,
            last_read: Mutex::new(Instant::now()),
        }
    }

    /// The id of the key that seals.
    pub fn active_key_id(&self) -> String {
        self.keys.read().expect("keys lock")[0].id.clone()
    }

    /// Seals `secret` with the first key, bound to `owner` (what it belongs to).
    pub fn seal(&self, secret: &str, owner: &str) -> String {
        let keys = self.keys.read().expect("keys lock");
        let key = &keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut sealed = secret.as_bytes().to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner.as_bytes()),
                &mut sealed,
            )
            .expect("AES-GCM seals any secret of a sane length");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}:{}", key.id, STANDARD.encode(bytes))
    }

    /// Opens a stored secret of `owner`. A clear one (stored before sealing) is returned as is.
    pub fn open(&self, stored: &str, owner: &str) -> Result<String, OpenError> {
        let Some((key_id, sealed)) = parse_sealed(stored) else {
            return Ok(stored.to_owned());
        };
        if let Some(opened) = self.open_with(key_id, sealed, owner) {
            return opened;
        }
        // A rotation by another process may have added the key to the file since it was read.
        if self.reload_if_due()
            && let Some(opened) = self.open_with(key_id, sealed, owner)
        {
            return opened;
        }
        Err(OpenError::UnknownKey(key_id.to_owned()))
    }

    fn open_with(
        &self,
        key_id: &str,
        sealed: &str,
        owner: &str,
    ) -> Option<Result<String, OpenError>> {
        let keys = self.keys.read().expect("keys lock");
        let key = keys.iter().find(|k| k.id == key_id)?;
        Some(open_sealed(&key.key, sealed, owner))
    }

    /// Reads the key file again, at most once per [`RELOAD_INTERVAL`]; says whether it did.
    fn reload_if_due(&self) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        {
            let mut last = self.last_read.lock().expect("reload lock");
            if last.elapsed() < RELOAD_INTERVAL {
                return false;
            }
            *last = Instant::now();
        }
        match read_key_file(path) {
            Ok(keys) => {
                *self.keys.write().expect("keys lock") = keys;
                tracing::info!(path = %path.display(), "secrets key file read again");
                true
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %format!("{error:#}"), "cannot read the secrets key file again");
                false
            }
        }
    }
}

/// Opens a stored secret with `keyring`, which may be missing: a clear value needs none.
pub fn open_stored(
    keyring: Option<&SecretsKeyring>,
    stored: &str,
    owner: &str,
) -> Result<String, OpenError> {
    match keyring {
        Some(keyring) => keyring.open(stored, owner),
        None if is_sealed(stored) => Err(OpenError::NoKeyring),
        None => Ok(stored.to_owned()),
    }
}

/// Whether a stored value is sealed (else it is a clear secret of an older version).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// The key id and sealed bytes of a sealed value.
fn parse_sealed(stored: &str) -> Option<(&str, &str)> {
    stored.strip_prefix(SEALED_PREFIX)?.split_once(':')
}

fn open_sealed(key: &LessSafeKey, sealed: &str, owner: &str) -> Result<String, OpenError> {
    let bytes = STANDARD.decode(sealed).map_err(|_| OpenError::Damaged)?;
    if bytes.len() < NONCE_LEN {
        return Err(OpenError::Damaged);
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Damaged)?;
    let mut buffer = ciphertext.to_vec();
    let opened = key
        .open_in_place(nonce, Aad::from(owner.as_bytes()), &mut buffer)
        .map_err(|_| OpenError::Damaged)?;
    String::from_utf8(opened.to_vec()).map_err(|_| OpenError::Damaged)
}

fn new_key_bytes() -> [u8; KEY_LEN] {
    let mut bytes = [0u8; KEY_LEN];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// The keys of the file at `path`, in its order.
fn read_key_bytes(path: &Path) -> anyhow::Result<Vec<[u8; KEY_LEN]>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the secrets key file {}", path.display()))?;
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .enumerate()
        .map(|(index, line)| {
            STANDARD
                .decode(line)
                .ok()
                .and_then(|bytes| <[u8; KEY_LEN]>::try_from(bytes).ok())
                .with_context(|| {
                    format!(
                        "key {} of {} is not the base64 of {KEY_LEN} bytes",
                        index + 1,
                        path.display()
                    )
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if keys.is_empty() {
        bail!("the secrets key file {} holds no key", path.display());
    }
    Ok(keys)
}

fn read_key_file(path: &Path) -> anyhow::Result<Vec<Key>> {
    read_key_bytes(path)?
        .iter()
        .map(|bytes| Key::new(bytes))
        .collect()
}

/// Writes a key file that must not exist yet, readable by its owner only.
fn write_new_key_file(path: &Path, keys: &[[u8; KEY_LEN]]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let mut text = String::from(FILE_HEADER);
    for key in keys {
        text.push_str(&STANDARD.encode(key));
        text.push('\n');
    }
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Puts a new key first in the key file at `path` (created if missing), keeping the others
/// for what they sealed; returns the new key's id. The file is replaced whole (written beside
/// it, then renamed), so that a reader never sees half of it.
pub fn add_key(path: &Path) -> anyhow::Result<String> {
    let new = new_key_bytes();
    let mut keys = vec![new];
    if path.exists() {
        keys.extend(read_key_bytes(path)?);
    }
    let staging = path.with_extension("new");
    let _ = std::fs::remove_file(&staging);
    write_new_key_file(&staging, &keys)
        .with_context(|| format!("cannot write {}", staging.display()))?;
    std::fs::rename(&staging, path)
        .with_context(|| format!("cannot replace the secrets key file {}", path.display()))?;
    Ok(key_id(&new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_owner_and_hides_the_secret() {
        let keyring = SecretsKeyring::ephemeral();
        let sealed = keyring.seal("whsec_c2VjcmV0", "webhook-1");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("whsec_"), "{sealed}");
        assert!(sealed.contains(&keyring.active_key_id()));
        assert_eq!(
            keyring.open(&sealed, "webhook-1").unwrap(),
            "whsec_c2VjcmV0"
        );
        assert!(matches!(
            keyring.open(&sealed, "webhook-2"),
            Err(OpenError::Damaged)
        ));
        // Two seals of one secret differ (a new nonce each time).
        assert_ne!(sealed, keyring.seal("whsec_c2VjcmV0", "webhook-1"));
    }

    #[test]
    fn clear_values_pass_and_other_keys_do_not_open() {
        let keyring = SecretsKeyring::ephemeral();
        assert_eq!(keyring.open("whsec_clear", "w").unwrap(), "whsec_clear");
        let other = SecretsKeyring::ephemeral().seal("whsec_x", "w");
        assert!(matches!(
            keyring.open(&other, "w"),
            Err(OpenError::UnknownKey(_))
        ));
        assert!(matches!(
            open_stored(None, &other, "w"),
            Err(OpenError::NoKeyring)
        ));
        let mut damaged = keyring.seal("whsec_x", "w");
        damaged.pop();
        damaged.push('A');
        assert!(keyring.open(&damaged, "w").is_err());
    }

    #[test]
    fn a_key_file_is_created_once_and_a_rotation_keeps_the_old_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let (first, created) = SecretsKeyring::load_or_create(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, created) = SecretsKeyring::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.active_key_id(), again.active_key_id());
        let sealed = first.seal("whsec_old", "w");

        let new_id = add_key(&path).unwrap();
        let rotated = SecretsKeyring::load(&path).unwrap();
        assert_eq!(rotated.active_key_id(), new_id);
        assert_eq!(rotated.open(&sealed, "w").unwrap(), "whsec_old");
        assert!(rotated.seal("whsec_new", "w").contains(&new_id));
    }

    #[test]
    fn a_broken_key_file_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        std::fs::write(&path, "# keys\nnot-base64!\n").unwrap();
        let error = format!("{:#}", SecretsKeyring::load(&path).unwrap_err());
        assert!(error.contains("key 1 of"), "{error}");
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(SecretsKeyring::load(&path).is_err());
    }
}
