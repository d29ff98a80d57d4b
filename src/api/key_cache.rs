//! Verified API keys in memory, so that a call costs no database query, and the revocations
//! that evict them.
//!
//! Only keys the database confirmed are cached (by the SHA-256 digest of their secret), at most
//! [`CAPACITY`] of them in a `moka` cache (which decides what to evict): unknown secrets are
//! never remembered, so they cannot grow memory.
//!
//! The cache is trusted only while it is *fresh*:
//! - a background task asks the store for revocations newer than the last generation it saw,
//!   every [`POLL_INTERVAL`] and at once when the store signals one (a revocation through this
//!   process's store, or a PostgreSQL NOTIFY from another process);
//! - a cached answer is used only if the last successful check began less than [`FRESHNESS`]
//!   ago, and no revocation was heard of since it began.
//!
//! Otherwise callers fall back to the database. So a revocation made by this process (or
//! announced through NOTIFY) is obeyed at once, and one made anywhere else within [`FRESHNESS`].

use std::{
    collections::HashSet,
    sync::{
        RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use moka::future::Cache;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::caller::Caller;
use crate::domain::ids::KeyId;
use crate::store::{Revocation, Store};
use crate::tasks::BackgroundTasks;

/// How often revocations are checked when nothing signals one.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How old the last check may be for the cache to be trusted: the bound on how long a key
/// revoked by another process keeps working here.
pub const FRESHNESS: Duration = Duration::from_secs(1);
/// Verified keys kept at most.
pub const CAPACITY: usize = 10_000;

/// The SHA-256 digest of a key's secret: what the cache is keyed by.
type Digest = [u8; 32];

pub struct KeyCache {
    /// Verified keys: digest of the secret → the key's caller.
    keys: Cache<Digest, Caller>,
    state: RwLock<State>,
    /// Set once the first generation has been read; before that nothing is cached.
    ready: AtomicBool,
    /// When the last successful check began, in nanoseconds since `epoch`.
    checked_at: AtomicU64,
    /// The store's revocation count when the last successful check began.
    checked_count: AtomicU64,
    epoch: Instant,
    /// Bumped when keys are revoked, for open streams to look at their key again.
    revoked_news: watch::Sender<u64>,
    store: Store,
}

/// What is known of revocations.
#[derive(Default)]
struct State {
    /// Keys seen revoked since this process started. Keys are never un-revoked; the set grows
    /// only with revocations, which administrators make.
    revoked: HashSet<KeyId>,
    /// The latest revocation generation applied.
    generation: u64,
}

impl KeyCache {
    /// A cache over `store`'s keys and the task that keeps it fresh until `shutdown`. Must be
    /// called within a Tokio runtime.
    pub fn start(store: Store, tasks: &BackgroundTasks) -> std::sync::Arc<Self> {
        let cache = std::sync::Arc::new(Self {
            keys: Cache::builder()
                .max_capacity(CAPACITY as u64)
                // A revocation evicts every entry of its key, whatever the digest.
                .support_invalidation_closures()
                .build(),
            state: RwLock::new(State::default()),
            ready: AtomicBool::new(false),
            checked_at: AtomicU64::new(0),
            checked_count: AtomicU64::new(0),
            epoch: Instant::now(),
            revoked_news: watch::Sender::new(0),
            store,
        });
        tasks.spawn(cache.clone().refresh(tasks.shutdown_token()));
        cache
    }

    /// The caller whose secret has this digest, if cached and the cache is fresh.
    pub async fn get(&self, digest: &Digest) -> Option<Caller> {
        if !self.is_fresh() {
            return None;
        }
        let caller = self.keys.get(digest).await?;
        // An entry that an insert racing a revocation put back is never answered.
        (!self.read().revoked.contains(&caller.key_id)).then_some(caller)
    }

    /// A ticket to cache what a database lookup starting now finds: only a lookup that began
    /// after the first generation was read can be cached safely.
    pub fn ticket(&self) -> Option<Ticket> {
        self.ready.load(Ordering::SeqCst).then_some(Ticket(()))
    }

    /// Remembers a key the database confirmed, unless it has been revoked since.
    pub async fn insert(&self, _ticket: Ticket, digest: Digest, caller: Caller) {
        if self.read().revoked.contains(&caller.key_id) {
            return;
        }
        let key_id = caller.key_id.clone();
        self.keys.insert(digest, caller).await;
        // A revocation applied between the check and the insert evicted before this entry
        // existed: take it out again.
        if self.read().revoked.contains(&key_id) {
            self.keys.invalidate(&digest).await;
        }
    }

    /// Whether the key is revoked, if the cache is fresh enough to say.
    pub fn is_revoked(&self, key_id: &KeyId) -> Option<bool> {
        self.is_fresh()
            .then(|| self.read().revoked.contains(key_id))
    }

    /// Resolves once this process knows the key is revoked.
    pub async fn revoked(&self, key_id: &KeyId) {
        let mut news = self.revoked_news.subscribe();
        loop {
            if self.read().revoked.contains(key_id) {
                return;
            }
            if news.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    fn is_fresh(&self) -> bool {
        let checked_at = self.checked_at.load(Ordering::SeqCst);
        self.ready.load(Ordering::Relaxed)
            && self.checked_count.load(Ordering::SeqCst) == self.store.signals().revoked.count()
            && self.nanos_now().saturating_sub(checked_at) < FRESHNESS.as_nanos() as u64
    }

    fn nanos_now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Keeps the cache fresh until shutdown.
    async fn refresh(self: std::sync::Arc<Self>, shutdown: CancellationToken) {
        let signal = self.store.signals().revoked.clone();
        let mut failing = false;
        loop {
            match self.check().await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("checking key revocations works again");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "cannot check key revocations; keys are looked up in the database until it works again");
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = signal.notified() => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    /// One check: the first reads the current generation, later ones apply what was revoked
    /// after the last generation seen.
    async fn check(&self) -> crate::error::Result<()> {
        let began = self.nanos_now();
        let count = self.store.signals().revoked.count();
        let ready = self.ready.load(Ordering::SeqCst);
        if ready {
            let after = self.read().generation;
            let revocations = self.store.keys().revocations_after(after).await?;
            if !revocations.is_empty() {
                self.apply(revocations);
            }
        } else {
            let generation = self.store.keys().generation().await?;
            self.write().generation = generation;
        }
        self.checked_count.store(count, Ordering::SeqCst);
        self.checked_at.store(began, Ordering::SeqCst);
        if !ready {
            self.ready.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    fn apply(&self, revocations: Vec<Revocation>) {
        let mut state = self.write();
        let mut revoked = Vec::with_capacity(revocations.len());
        for revocation in revocations {
            state.generation = state.generation.max(revocation.generation);
            tracing::info!(key_id = %revocation.key_id, "API key revoked");
            if state.revoked.insert(revocation.key_id.clone()) {
                revoked.push(revocation.key_id);
            }
        }
        drop(state);
        if !revoked.is_empty() {
            // Entries of these keys are not returned from here on; moka removes them later.
            let evicted = self
                .keys
                .invalidate_entries_if(move |_, caller| revoked.contains(&caller.key_id));
            if let Err(error) = evicted {
                // Cannot happen (the cache supports it); `get` refuses revoked keys anyway.
                tracing::error!(%error, "cannot evict revoked API keys from the cache");
            }
        }
        self.revoked_news.send_modify(|news| *news += 1);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Proof that a database lookup began after the cache was ready (see [`KeyCache::ticket`]).
pub struct Ticket(());

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{self, Role, Scope, secret_digest};
    use crate::store::StoreOptions;

    async fn cache_with_key() -> (
        Store,
        std::sync::Arc<KeyCache>,
        Caller,
        Digest,
        CancellationToken,
    ) {
        let store = Store::connect("sqlite::memory:", StoreOptions::default())
            .await
            .expect("store");
        store.migrate().await.expect("migrate");
        let (record, secret) =
            keys::create_key(&store, "k", Role::Viewer, &Scope::Organisation, None)
                .await
                .expect("key");
        let shutdown = CancellationToken::new();
        let cache = KeyCache::start(store.clone(), &BackgroundTasks::new(shutdown.clone()));
        let ticket = loop {
            if let Some(ticket) = cache.ticket() {
                break ticket;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let caller = Caller {
            key_id: record.id,
            role: Role::Viewer,
            scope: Scope::Organisation,
        };
        let digest = secret_digest(&secret);
        cache.insert(ticket, digest, caller.clone()).await;
        (store, cache, caller, digest, shutdown)
    }

    #[tokio::test]
    async fn a_revocation_through_the_same_store_is_obeyed_at_once() {
        let (store, cache, caller, digest, shutdown) = cache_with_key().await;
        assert_eq!(cache.get(&digest).await, Some(caller.clone()));
        store.keys().revoke(&caller.key_id).await.expect("revoke");
        // No waiting: the cache is not trusted until it has caught up.
        assert_eq!(cache.get(&digest).await, None);
        tokio::time::timeout(Duration::from_secs(10), cache.revoked(&caller.key_id))
            .await
            .expect("the revocation is applied");
        assert_eq!(cache.is_revoked(&caller.key_id), Some(true));
        assert_eq!(cache.get(&digest).await, None);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_revoked_key_is_not_cached_again() {
        let (store, cache, caller, digest, shutdown) = cache_with_key().await;
        store.keys().revoke(&caller.key_id).await.expect("revoke");
        tokio::time::timeout(Duration::from_secs(10), cache.revoked(&caller.key_id))
            .await
            .expect("the revocation is applied");
        // A lookup that read the key before the revocation committed must not bring it back.
        let ticket = cache.ticket().expect("ready");
        cache.insert(ticket, digest, caller).await;
        assert_eq!(cache.get(&digest).await, None);
        shutdown.cancel();
    }

    #[test]
    fn the_cache_is_bounded() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (_store, cache, caller, _, shutdown) = cache_with_key().await;
            for n in 0..(CAPACITY + 100) {
                let mut digest = [0u8; 32];
                digest[..8].copy_from_slice(&(n as u64).to_le_bytes());
                let ticket = cache.ticket().expect("ready");
                cache.insert(ticket, digest, caller.clone()).await;
            }
            cache.keys.run_pending_tasks().await;
            let cached = cache.keys.entry_count();
            assert!(
                cached > 0 && cached <= CAPACITY as u64,
                "{cached} keys cached"
            );
            shutdown.cancel();
        });
    }
}
