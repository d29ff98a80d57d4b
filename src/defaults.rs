//! Defaults that more than the flags need: the server's flags ([`crate::config`]), the store's
//! options ([`crate::store::StoreOptions`]'s `Default`) and the bulk commands ([`crate::cli`])
//! are written from these, so that each is stated once. This module depends on nothing.

use std::time::Duration;

/// How long a deleted number stays restorable.
pub const DELETION_QUEUE_PERIOD: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Database connections per replica.
pub const DB_POOL_SIZE: u32 = 16;
/// How long a query waits for a connection before failing.
pub const DATABASE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most writes committed together in one transaction.
pub const WRITE_BATCH_MAX: u16 = 256;
/// How long the writer waits for more writes to join a batch.
pub const WRITE_BATCH_WAIT: Duration = Duration::ZERO;
/// The countries whose numbers are assigned only to users with an emergency location: the US
/// (Kari's Law, RAY BAUM'S Act) and Canada.
pub const EMERGENCY_LOCATION_COUNTRIES: &str = "US,CA";
/// The most items in one batch request; also the import's batch size, so that an import
/// against a server with no flags fits.
pub const MAX_BATCH_ITEMS: usize = 1000;
