//! The per-key rate limits' flags (see `api::rate_limit`): a rate and a burst per role, and
//! for WatchChanges opens.

use clap::Args;

/// The largest rate or burst accepted: beyond it a token would be worth less than a nanosecond.
pub const MAX_RATE: u32 = 1_000_000;

/// [`RateLimitSettings::unlimited`] as the environment of a `telephony-admin serve` process.
pub const UNLIMITED_ENV: [(&str, &str); 8] = [
    ("TELEPHONY_ADMIN_RATE_LIMIT_ADMIN_PER_SECOND", "1000000"),
    ("TELEPHONY_ADMIN_RATE_LIMIT_ADMIN_BURST", "1000000"),
    ("TELEPHONY_ADMIN_RATE_LIMIT_VIEWER_PER_SECOND", "1000000"),
    ("TELEPHONY_ADMIN_RATE_LIMIT_VIEWER_BURST", "1000000"),
    (
        "TELEPHONY_ADMIN_RATE_LIMIT_SESSION_SERVICE_PER_SECOND",
        "1000000",
    ),
    (
        "TELEPHONY_ADMIN_RATE_LIMIT_SESSION_SERVICE_BURST",
        "1000000",
    ),
    (
        "TELEPHONY_ADMIN_RATE_LIMIT_WATCH_OPENS_PER_MINUTE",
        "1000000",
    ),
    ("TELEPHONY_ADMIN_RATE_LIMIT_WATCH_OPENS_BURST", "1000000"),
];

#[derive(Debug, Clone, Args)]
pub struct RateLimitSettings {
    /// Calls per second of an API key with the admin role (a batch counts each item), per replica.
    #[arg(
        long = "rate-limit-admin-per-second",
        env = "TELEPHONY_ADMIN_RATE_LIMIT_ADMIN_PER_SECOND",
        default_value_t = 200
    )]
    pub admin_per_second: u32,

    /// Calls an admin key may make at once, above its rate (its bucket); also the largest batch it may send.
    #[arg(
        long = "rate-limit-admin-burst",
        env = "TELEPHONY_ADMIN_RATE_LIMIT_ADMIN_BURST",
        default_value_t = 2000
    )]
    pub admin_burst: u32,

    /// Calls per second of a viewer key, per replica.
    #[arg(
        long = "rate-limit-viewer-per-second",
        env = "TELEPHONY_ADMIN_RATE_LIMIT_VIEWER_PER_SECOND",
        default_value_t = 100
    )]
    pub viewer_per_second: u32,

    /// Calls a viewer key may make at once, above its rate.
    #[arg(
        long = "rate-limit-viewer-burst",
        env = "TELEPHONY_ADMIN_RATE_LIMIT_VIEWER_BURST",
        default_value_t = 500
    )]
    pub viewer_burst: u32,

    /// Calls per second of a session-service key, per replica.
    #[arg(
        long = "rate-limit-session-service-per-second",
        env = "TELEPHONY_ADMIN_RATE_LIMIT_SESSION_SERVICE_PER_SECOND",
        default_value_t = 500
    )]
    pub session_service_per_second: u32,

    /// Calls a session-service key may make at once, above its rate.
    #[arg(
        long = "rate-limit-session-service-burst",
        env = "TELEPHONY_ADMIN_RATE_LIMIT_SESSION_SERVICE_BURST",
        default_value_t = 2000
    )]
    pub session_service_burst: u32,

    /// WatchChanges streams an API key may open per minute, per replica.
    #[arg(
        long = "rate-limit-watch-opens-per-minute",
        env = "TELEPHONY_ADMIN_RATE_LIMIT_WATCH_OPENS_PER_MINUTE",
        default_value_t = 60
    )]
    pub watch_opens_per_minute: u32,

    /// WatchChanges streams an API key may open at once, above that rate.
    #[arg(
        long = "rate-limit-watch-opens-burst",
        env = "TELEPHONY_ADMIN_RATE_LIMIT_WATCH_OPENS_BURST",
        default_value_t = 60
    )]
    pub watch_opens_burst: u32,
}

impl RateLimitSettings {
    /// Every rate and burst is between 1 and [`MAX_RATE`].
    pub fn validate(&self) -> Result<(), String> {
        for (flag, value) in [
            ("--rate-limit-admin-per-second", self.admin_per_second),
            ("--rate-limit-admin-burst", self.admin_burst),
            ("--rate-limit-viewer-per-second", self.viewer_per_second),
            ("--rate-limit-viewer-burst", self.viewer_burst),
            (
                "--rate-limit-session-service-per-second",
                self.session_service_per_second,
            ),
            (
                "--rate-limit-session-service-burst",
                self.session_service_burst,
            ),
            (
                "--rate-limit-watch-opens-per-minute",
                self.watch_opens_per_minute,
            ),
            ("--rate-limit-watch-opens-burst", self.watch_opens_burst),
        ] {
            if !(1..=MAX_RATE).contains(&value) {
                return Err(format!(
                    "{flag} must be between 1 and {MAX_RATE} (got {value})"
                ));
            }
        }
        Ok(())
    }

    /// Limits no load reaches: for tests and benchmarks, which make thousands of calls with one
    /// key (the limiter still runs).
    pub fn unlimited() -> Self {
        Self {
            admin_per_second: MAX_RATE,
            admin_burst: MAX_RATE,
            viewer_per_second: MAX_RATE,
            viewer_burst: MAX_RATE,
            session_service_per_second: MAX_RATE,
            session_service_burst: MAX_RATE,
            watch_opens_per_minute: MAX_RATE,
            watch_opens_burst: MAX_RATE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unlimited_environment_is_every_rate_flag_at_the_largest_value() {
        let settings = RateLimitSettings::unlimited();
        let values = [
            settings.admin_per_second,
            settings.admin_burst,
            settings.viewer_per_second,
            settings.viewer_burst,
            settings.session_service_per_second,
            settings.session_service_burst,
            settings.watch_opens_per_minute,
            settings.watch_opens_burst,
        ];
        for ((name, value), expected) in UNLIMITED_ENV.into_iter().zip(values) {
            assert_eq!(value.parse::<u32>(), Ok(expected), "{name}");
        }
        let command = <RateLimitSettings as clap::Args>::augment_args(clap::Command::new("x"));
        let mut named: Vec<&str> = command
            .get_arguments()
            .filter_map(|arg| arg.get_env()?.to_str())
            .collect();
        let mut listed: Vec<&str> = UNLIMITED_ENV.iter().map(|(name, _)| *name).collect();
        named.sort_unstable();
        listed.sort_unstable();
        assert_eq!(named, listed);
    }
}
