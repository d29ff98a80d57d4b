//! This replica's hold on one delivery. The lease row in the database expires `ttl` after it was
//! last renewed; locally it is trusted only until `ttl` after the renewal *started*, so this
//! replica always stops using a lease before any other replica can take it.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::store::Store;

pub struct Lease {
    sink: String,
    owner: String,
    ttl: Duration,
    valid_until: Instant,
    renew_at: Instant,
}

impl Lease {
    /// Takes the lease if it is free; `None` when another replica holds it.
    pub async fn acquire(
        store: &Store,
        sink: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Self>> {
        let started = Instant::now();
        if !store.deliveries().acquire_lease(sink, owner, ttl).await? {
            return Ok(None);
        }
        Ok(Some(Self {
            sink: sink.to_owned(),
            owner: owner.to_owned(),
            ttl,
            valid_until: started + ttl,
            renew_at: started + ttl / 3,
        }))
    }

    pub fn sink(&self) -> &str {
        &self.sink
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// When an idle worker should wake to renew.
    pub fn renew_at(&self) -> Instant {
        self.renew_at
    }

    /// Makes sure at least `budget` of the lease remains, renewing it when due. `false` when it
    /// was lost (or the delivery was paused or deleted).
    pub async fn keep(&mut self, store: &Store, budget: Duration) -> Result<bool> {
        let now = Instant::now();
        if now < self.renew_at && self.valid_until > now + budget {
            return Ok(true);
        }
        let started = Instant::now();
        let renewed = store
            .deliveries()
            .acquire_lease(&self.sink, &self.owner, self.ttl)
            .await;
        match renewed {
            Ok(true) => {
                self.valid_until = started + self.ttl;
                self.renew_at = started + self.ttl / 3;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => {
                // Trust the lease as long as it lasts; retry the renewal on the next call.
                if self.valid_until > Instant::now() + budget {
                    tracing::warn!(delivery = %self.sink, error = %e, "lease renewal failed; retrying");
                    self.renew_at = Instant::now() + Duration::from_millis(500);
                    Ok(true)
                } else {
                    Err(e)
                }
            }
        }
    }
}
