//! Fair use: a token bucket per API key, with a rate and a burst per role (a batch takes one
//! token per item), and a bucket per key for WatchChanges opens. A refused call is
//! RESOURCE_EXHAUSTED with `google.rpc.RetryInfo` (when it can succeed) and
//! `google.rpc.QuotaFailure` (which limit). The buckets are per replica: N replicas admit N
//! times the rate.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::caller::Caller;
use crate::domain::DomainError;
use crate::domain::ids::KeyId;
use crate::domain::role::Role;
use crate::error::{Error, Result, Throttle};
use crate::metrics::{self, RateLimit};

/// How often buckets that have refilled are dropped, so that keys no longer calling cost no
/// memory.
pub const EVICT_EVERY: Duration = Duration::from_secs(60);

/// A rate (tokens per second, or per minute for watch opens) and a burst (the bucket's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_period: u32,
    pub burst: u32,
}

/// The configured quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuotas {
    /// Calls (a batch: its items) per second.
    pub admin: Rate,
    pub viewer: Rate,
    pub session_service: Rate,
    /// WatchChanges opens per minute.
    pub watch_opens: Rate,
}

struct Bucket {
    limiter: DefaultKeyedRateLimiter<KeyId>,
    rate: Rate,
}

impl Bucket {
    fn new(rate: Rate, per_minute: bool) -> Self {
        let per_period = NonZeroU32::new(rate.per_period).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
        let quota = if per_minute {
            Quota::per_minute(per_period)
        } else {
            Quota::per_second(per_period)
        };
        Self {
            limiter: RateLimiter::keyed(quota.allow_burst(burst)),
            rate,
        }
    }
}

/// The buckets of every key, by role.
pub struct RateLimits {
    admin: Bucket,
    viewer: Bucket,
    session_service: Bucket,
    watch_opens: Bucket,
}

impl RateLimits {
    pub fn new(quotas: RateQuotas) -> Self {
        Self {
            admin: Bucket::new(quotas.admin, false),
            viewer: Bucket::new(quotas.viewer, false),
            session_service: Bucket::new(quotas.session_service, false),
            watch_opens: Bucket::new(quotas.watch_opens, true),
        }
    }

    /// Takes `cells` tokens (1 for a call, the item count for a batch) from the caller's bucket.
    /// More than the bucket holds can never pass: INVALID_ARGUMENT on `field`, split it.
    pub fn charge(&self, caller: &Caller, cells: usize, field: &str) -> Result<()> {
        let bucket = match caller.role {
            Role::Admin => &self.admin,
            Role::Viewer => &self.viewer,
            Role::SessionService => &self.session_service,
        };
        let (role, Rate { per_period, burst }) = (caller.role.as_str(), bucket.rate);
        // Every call passes here: the words are only made for a refusal.
        match take(bucket, &caller.key_id, cells) {
            Taken::Yes => Ok(()),
            Taken::Later(retry_after) => Err(throttled(
                caller,
                RateLimit::Requests,
                retry_after,
                format!(
                    "rate limit exceeded: an API key with the {role} role may make {per_period} calls per second, {burst} at once; retry in {:.1} s",
                    retry_after.as_secs_f64()
                ),
                format!(
                    "{role} role: {per_period} calls per second, {burst} at once, per API key and replica (a batch counts each item)"
                ),
            )),
            Taken::Never => Err(DomainError::invalid(
                field,
                format!(
                    "holds {cells} items; an API key with the {role} role may send at most {burst} at once: split it"
                ),
            )
            .into()),
        }
    }

    /// Takes one WatchChanges open from the caller's bucket.
    pub fn charge_watch_open(&self, caller: &Caller) -> Result<()> {
        let bucket = &self.watch_opens;
        let rate = bucket.rate;
        let retry_after = match take(bucket, &caller.key_id, 1) {
            Taken::Yes => return Ok(()),
            Taken::Later(retry_after) => retry_after,
            // A bucket holds at least one token: not reached.
            Taken::Never => Duration::from_secs(60) / rate.per_period.max(1),
        };
        Err(throttled(
            caller,
            RateLimit::WatchOpens,
            retry_after,
            format!(
                "too many WatchChanges opens: an API key may open {} per minute, {} at once",
                rate.per_period, rate.burst
            ),
            format!(
                "WatchChanges opens: {} per minute, {} at once, per API key and replica",
                rate.per_period, rate.burst
            ),
        ))
    }

    /// Drops the buckets that are full again: their keys have not called for a while.
    pub fn evict_idle(&self) {
        for bucket in [
            &self.admin,
            &self.viewer,
            &self.session_service,
            &self.watch_opens,
        ] {
            bucket.limiter.retain_recent();
            bucket.limiter.shrink_to_fit();
        }
    }
}

enum Taken {
    Yes,
    /// Not now; this long from now it would be.
    Later(Duration),
    /// More than the bucket holds.
    Never,
}

fn take(bucket: &Bucket, key: &KeyId, cells: usize) -> Taken {
    let Some(cells) = u32::try_from(cells).ok().and_then(NonZeroU32::new) else {
        return if cells == 0 { Taken::Yes } else { Taken::Never };
    };
    match bucket.limiter.check_key_n(key, cells) {
        Ok(Ok(())) => Taken::Yes,
        Ok(Err(not_until)) => Taken::Later(not_until.wait_time_from(DefaultClock::default().now())),
        Err(_insufficient_capacity) => Taken::Never,
    }
}

fn throttled(
    caller: &Caller,
    limit: RateLimit,
    retry_after: Duration,
    message: String,
    description: String,
) -> Error {
    metrics::record_rate_limited(caller.role.as_str(), limit);
    tracing::debug!(key_id = %caller.key_id, role = caller.role.as_str(), limit = limit.label(), ?retry_after, "call throttled");
    // Whole milliseconds, rounded up: a client that waits exactly this long succeeds.
    let millis = retry_after.as_nanos().div_ceil(1_000_000).max(1);
    Error::RateLimited(Throttle {
        message,
        retry_after: Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX)),
        subject: format!("api_key:{}", caller.key_id),
        description,
        limit: limit.label(),
    })
}
