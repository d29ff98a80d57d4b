//! Push delivery of change events: to webhooks (signed HTTP POSTs) and, when a mail relay is
//! configured, to the affected users by e-mail.
//!
//! Both are durable deliveries with a cursor in the database (`deliveries`):
//! - [`worker`] is the loop every delivery runs: read events after the cursor ([`source`]), hand
//!   each wanted one to the sink until it is delivered (retrying with [`backoff`]), move the
//!   cursor. Events go out in sequence order, at least once; a restart resumes at the cursor.
//!   After failing continuously for the configured time a webhook is paused, its last error kept.
//! - [`lease`] and [`supervisor`]: each delivery is run by exactly one replica at a time, the one
//!   holding its lease; when that replica dies, the lease expires and another takes it over.
//! - Sinks: [`webhook`] (Standard Webhooks over [`http_client`], body from [`payload`], signed by
//!   [`signature`]) and [`mail`] (SMTP with lettre).
//! - [`monitor`]: how far behind each delivery is, for operators and metrics.
//!
//! Workers wake on the change hub's head (a new commit), not by polling.

pub mod backoff;
pub mod http_client;
pub mod lease;
pub mod mail;
pub mod monitor;
pub mod payload;
pub mod signature;
pub mod source;
pub mod supervisor;
pub mod webhook;
pub mod worker;

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::{Context, bail};

use crate::domain::webhook::TargetPolicy;
use crate::events::ChangeHub;
use crate::store::{MAIL_SINK, Store};
use crate::tasks::BackgroundTasks;
pub use mail::MailSettings;
pub use monitor::{DeliveryLag, Monitor};

/// How deliveries behave; from the configuration.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Plain http and private addresses for webhooks.
    pub policy: TargetPolicy,
    /// The longest one attempt (an HTTP exchange, an SMTP session) may take.
    pub attempt_timeout: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Continuous failure after which a webhook is paused.
    pub pause_after: Duration,
    /// How long a replica's hold on a delivery lasts without renewal: the longest a dead
    /// replica's deliveries wait before another replica takes them over.
    pub lease_ttl: Duration,
    pub mail: Option<MailSettings>,
}

impl DeliverySettings {
    /// How often a replica looks for deliveries to take over.
    pub fn scan_interval(&self) -> Duration {
        (self.lease_ttl / 4).max(Duration::from_millis(100))
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.lease_ttl < (self.attempt_timeout + Duration::from_secs(1)) * 2 {
            bail!(
                "the delivery lease ({}) must be at least twice the delivery timeout ({}) plus one second",
                humantime::format_duration(self.lease_ttl),
                humantime::format_duration(self.attempt_timeout)
            );
        }
        if self.retry_min.is_zero() {
            bail!("the shortest delivery retry wait must be above zero");
        }
        Ok(())
    }
}

/// The running deliveries of this replica.
pub struct Deliveries {
    monitor: Arc<Monitor>,
}

impl Deliveries {
    /// The lag of every delivery this replica runs now.
    pub fn lags(&self) -> Vec<DeliveryLag> {
        self.monitor.snapshot()
    }
}

/// Starts delivering (webhooks always; mail when configured) until `tasks`' shutdown fires. The
/// supervisor and every worker are tracked tasks: shutdown waits for them to hand their leases
/// back.
pub async fn spawn(
    store: Store,
    hub: &ChangeHub,
    settings: DeliverySettings,
    tasks: &BackgroundTasks,
) -> anyhow::Result<Deliveries> {
    settings.check()?;
    let mail = match &settings.mail {
        Some(mail) => {
            let sink = mail::MailSink::new(store.clone(), mail, settings.attempt_timeout)?;
            // A new mail delivery starts at the current end of the log.
            let head = source::log_state(&store).await?.last_sequence;
            store
                .deliveries()
                .ensure(MAIL_SINK, head)
                .await
                .context("cannot set up the mail delivery")?;
            Some(sink)
        }
        None => None,
    };
    let monitor = Arc::new(Monitor::default());
    let supervisor = supervisor::Supervisor {
        context: worker::WorkerContext {
            store,
            head: hub.subscribe(),
            settings: Arc::new(settings.clone()),
            monitor: monitor.clone(),
            shutdown: tasks.shutdown_token(),
        },
        tasks: tasks.clone(),
        owner: uuid::Uuid::new_v4().to_string(),
        http: Arc::new(http_client::HttpClient::new(settings.policy)?),
        policy: settings.policy,
        mail,
        workers: HashMap::new(),
    };
    tasks.spawn(supervisor.run());
    Ok(Deliveries { monitor })
}
