//! The service under test, two ways: in this process through `startup::Application` (reads,
//! writes, listing), or as the real release binary in a process of its own (watchers, start-up),
//! where its memory can be read apart from the harness's.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use telephony_admin::config::{RateLimitSettings, ServeSettings, StorageSettings};
use telephony_admin::keys;
use telephony_admin::startup::Application;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::api::{Bearer, Clients, connect};
use crate::database::BenchDatabase;

const BINARY: &str = env!("CARGO_BIN_EXE_telephony-admin");

/// Production defaults on a loopback port, with a known admin key.
pub fn settings(configure: impl FnOnce(&mut ServeSettings)) -> ServeSettings {
    let mut settings = ServeSettings::defaults();
    settings.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    settings.bootstrap_key = Some(keys::generate_secret());
    settings.shutdown_grace = Duration::from_secs(2);
    // Limits the load never reaches, so that the harness measures the limiter's cost and not
    // its refusals.
    settings.rate_limits = RateLimitSettings::unlimited();
    // The measured assignments give US numbers to users without an emergency location.
    settings.emergency_location_countries = String::new();
    configure(&mut settings);
    settings
}

/// The service running in this process.
pub struct InProcess {
    pub address: SocketAddr,
    pub clients: Clients,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    pub async fn start(
        database: &BenchDatabase,
        configure: impl FnOnce(&mut ServeSettings),
    ) -> anyhow::Result<Self> {
        let settings = settings(configure);
        let secret = settings.bootstrap_key.clone().unwrap_or_default();
        let storage = StorageSettings {
            database_url: Some(database.url.clone()),
            data_dir: std::env::temp_dir(),
            // The measured calls store no webhook secret.
            secrets_key_file: None,
        };
        let app = Application::build(&storage, settings).await?;
        let address = app.local_addr();
        let stop = app.shutdown_token();
        let server = tokio::spawn(app.run_until_stopped());
        let channel = connect(address, 1).await?.remove(0);
        Ok(Self {
            address,
            clients: Clients::new(channel, Bearer::new(&secret)?),
            stop,
            server,
        })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.server.await?
    }
}

/// The release binary serving in a child process.
pub struct Process {
    pub address: SocketAddr,
    child: Child,
}

impl Process {
    /// `telephony-admin migrate` on the database.
    pub async fn migrate(database: &BenchDatabase) -> anyhow::Result<()> {
        let mut migrate = Command::new(BINARY);
        migrate
            .arg("migrate")
            .env("DATABASE_URL", &database.url)
            .stdout(Stdio::null());
        let status = tokio::task::spawn_blocking(move || migrate.status()).await??;
        anyhow::ensure!(status.success(), "migrate failed: {status}");
        Ok(())
    }

    /// Spawns `telephony-admin serve` with these extra environment variables and returns once
    /// it answers SERVING, with the time that took.
    pub async fn serve(
        database: &BenchDatabase,
        secret: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<(Self, Duration)> {
        let address = free_port()?;
        let spawned = Instant::now();
        let child = Command::new(BINARY)
            .arg("serve")
            .env("DATABASE_URL", &database.url)
            .env("TELEPHONY_ADMIN_LISTEN", address.to_string())
            .env("TELEPHONY_ADMIN_BOOTSTRAP_KEY", secret)
            .envs(telephony_admin::config::UNLIMITED_ENV)
            .env("TELEPHONY_ADMIN_EMERGENCY_LOCATION_COUNTRIES", "")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut process = Self { address, child };
        process.wait_until_serving(spawned).await?;
        Ok((process, spawned.elapsed()))
    }

    /// Polls grpc.health.v1 Check (every millisecond) until it answers SERVING.
    async fn wait_until_serving(&mut self, since: Instant) -> anyhow::Result<()> {
        let url = format!("http://{}", self.address);
        while since.elapsed() < Duration::from_secs(30) {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the server exited: {status}");
            }
            if let Ok(channel) = tonic::transport::Channel::from_shared(url.clone())?
                .connect()
                .await
            {
                let answer = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if answer.is_ok_and(|a| a.into_inner().status == ServingStatus::Serving as i32) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        anyhow::bail!("the server did not answer SERVING within 30 s")
    }

    /// Resident memory now (VmRSS), in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        // Drop kills it.
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}
