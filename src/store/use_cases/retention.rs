//! What the service keeps only for a while: change events past their retention, and the
//! answers kept for idempotent retries. Both go in short chunks, so that a purge never holds
//! the writer for long. (Numbers past their deletion time go with the inventory:
//! `Inventory::purge_deleted`.)

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::store::engine::Engine;
use crate::store::engine::idempotency::{PURGE_CHUNK, PurgeIdempotencyKeys};
use crate::store::engine::outbox::{PURGE_CHUNK_EVENTS, PurgeChanges, newest_before};

/// Retention: the store's surface for it.
pub struct Retention<'a> {
    engine: &'a Engine,
}

impl<'a> Retention<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Self { engine }
    }

    /// Deletes events that occurred before `cutoff`, chunk by chunk; returns how many went.
    pub async fn purge_changes_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let Some(through) = newest_before(self.engine.reader(), cutoff).await? else {
            return Ok(0);
        };
        let mut total = 0;
        loop {
            let deleted = self.engine.write(PurgeChanges { through }).await?;
            total += deleted;
            if deleted < PURGE_CHUNK_EVENTS {
                return Ok(total);
            }
        }
    }

    /// Forgets answers kept before `cutoff`, chunk by chunk: a retry after that is a new
    /// request.
    pub async fn purge_answers_before(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let mut total = 0;
        loop {
            let deleted = self.engine.write(PurgeIdempotencyKeys { cutoff }).await?;
            total += deleted;
            if deleted < PURGE_CHUNK {
                return Ok(total);
            }
        }
    }
}
