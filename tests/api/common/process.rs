//! The real `telephony-admin` binary as a child process, for what is per process: its metrics
//! registry, its trace exporter, a crash (SIGKILL) and a restart, and several replicas on one
//! database. It logs JSON on standard output; the harness reads the addresses it bound from
//! those lines and keeps every line (of standard error too) for tests to search.
//!
//! [`ServerCommand`] says how to start it (flags, environment, bootstrap key, which database);
//! [`TestProcess`] is the running server, killed when dropped.

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use telephony_admin::keys;
use tonic::transport::Channel;

use super::{Authed, Backend, TestDatabase, bearer};
use telephony_admin::proto::{
    account_service_client::AccountServiceClient, change_service_client::ChangeServiceClient,
    phone_number_service_client::PhoneNumberServiceClient,
    telephony_service_client::TelephonyServiceClient, user_service_client::UserServiceClient,
    webhook_service_client::WebhookServiceClient,
};

/// How to start `telephony-admin serve`: on 127.0.0.1:0, logging JSON at `info`, with the flags
/// and environment added here.
#[derive(Debug, Clone, Default)]
pub struct ServerCommand {
    args: Vec<String>,
    env: Vec<(String, String)>,
    key: Option<String>,
    listen: Option<String>,
}

impl ServerCommand {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds flags after `serve`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Sets an environment variable (after the defaults, so it may replace `RUST_LOG`).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Where it listens (else a port of the system's choosing): a restarted server where the
    /// last one was.
    pub fn listen(mut self, address: &str) -> Self {
        self.listen = Some(address.to_owned());
        self
    }

    /// The bootstrap admin key (else a new one): processes that share a database share it.
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }

    /// Starts on a fresh database of its own, dropped with the process.
    pub async fn start(self, backend: Backend) -> TestProcess {
        let database = TestDatabase::create(backend).await;
        let mut process = self.start_on(&database.url).await;
        process._database = Some(database);
        process
    }

    /// Starts on the database at `database_url` (the caller's, perhaps shared with other
    /// processes) and waits until it listens (at most 60 s) and a channel to it is connected.
    pub async fn start_on(self, database_url: &str) -> TestProcess {
        let admin_key = self.key.unwrap_or_else(keys::generate_secret);
        let mut command = Command::new(env!("CARGO_BIN_EXE_telephony-admin"));
        command
            .args(["serve", "--log-format", "json", "--listen"])
            .arg(self.listen.as_deref().unwrap_or("127.0.0.1:0"))
            .args(&self.args)
            .env("DATABASE_URL", database_url)
            .envs(
                super::shared_secrets_key_file(database_url)
                    .map(|path| ("TELEPHONY_ADMIN_SECRETS_KEY_FILE", path)),
            )
            .env("TELEPHONY_ADMIN_BOOTSTRAP_KEY", &admin_key)
            .env("RUST_LOG", "info")
            // No test reaches these limits unless it lowers one (its own flag wins).
            .envs(telephony_admin::config::UNLIMITED_ENV)
            // US numbers are assigned freely; the emergency location rule has tests of its own.
            .env("TELEPHONY_ADMIN_EMERGENCY_LOCATION_COUNTRIES", "")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start the telephony-admin binary");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        // Read both pipes to their end: a full pipe would block the server's logging.
        let readers = pipes
            .into_iter()
            .map(|pipe| {
                let sink = lines.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(pipe).lines() {
                        let Ok(line) = line else { return };
                        sink.lock().unwrap().push(line);
                    }
                })
            })
            .collect();
        let mut process = TestProcess {
            child,
            address: "0.0.0.0:0".parse().unwrap(),
            metrics_address: None,
            admin_key,
            channel: Channel::from_static("http://127.0.0.1:1").connect_lazy(),
            lines,
            readers,
            _database: None,
        };
        let listening = process
            .wait_for_line(|line| line["message"] == "listening")
            .await;
        process.address = address_of(&listening);
        process.metrics_address = process
            .find_line(|line| line["message"] == "serving metrics at /metrics")
            .map(|line| address_of(&line));
        process.channel = Channel::from_shared(format!("http://{}", process.address))
            .unwrap()
            .connect()
            .await
            .expect("connect to the server process");
        process
    }
}

/// A running server binary; killed when dropped.
pub struct TestProcess {
    child: Child,
    pub address: SocketAddr,
    /// Where `/metrics` is served, when `--metrics-listen` was given.
    pub metrics_address: Option<SocketAddr>,
    /// The bootstrap key: an organisation admin key.
    pub admin_key: String,
    pub channel: Channel,
    /// Every line written to standard output and standard error so far.
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    _database: Option<TestDatabase>,
}

impl TestProcess {
    /// Starts `telephony-admin serve` on a fresh database with `args` and `env` added.
    pub async fn spawn(backend: Backend, args: &[&str], env: &[(&str, &str)]) -> Self {
        env.iter()
            .fold(ServerCommand::new().args(args), |command, (name, value)| {
                command.env(name, value)
            })
            .start(backend)
            .await
    }

    /// SIGKILL: no graceful shutdown, nothing flushed or released. Returns once the process is
    /// reaped and all it wrote has been read.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
        for reader in self.readers.drain(..) {
            reader.join().expect("output reader");
        }
    }

    /// The process id, e.g. to read its `/proc/<pid>/status`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything written so far, one line each.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The first log line (parsed JSON) for which `matches` holds, if any yet.
    pub fn find_line(
        &self,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|line| matches(line))
    }

    /// Waits (at most 60 s) for a log line for which `matches` holds.
    pub async fn wait_for_line(
        &mut self,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = self.find_line(&matches) {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the server exited ({status}) before logging the expected line; its output:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no matching log line within 60 s; output:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clients that carry the bootstrap (organisation admin) key.
    pub fn accounts(&self) -> AccountServiceClient<Authed> {
        self.accounts_as(Some(&self.admin_key))
    }
    pub fn users(&self) -> UserServiceClient<Authed> {
        self.users_as(Some(&self.admin_key))
    }
    pub fn numbers(&self) -> PhoneNumberServiceClient<Authed> {
        PhoneNumberServiceClient::with_interceptor(
            self.channel.clone(),
            bearer(Some(&self.admin_key)),
        )
    }
    pub fn telephony(&self) -> TelephonyServiceClient<Authed> {
        TelephonyServiceClient::with_interceptor(
            self.channel.clone(),
            bearer(Some(&self.admin_key)),
        )
    }
    pub fn changes(&self) -> ChangeServiceClient<Authed> {
        self.changes_as(Some(&self.admin_key))
    }
    pub fn webhooks(&self) -> WebhookServiceClient<Authed> {
        WebhookServiceClient::with_interceptor(self.channel.clone(), bearer(Some(&self.admin_key)))
    }

    pub fn emergency_locations(
        &self,
    ) -> telephony_admin::proto::emergency_location_service_client::EmergencyLocationServiceClient<
        Authed,
    >{
        telephony_admin::proto::emergency_location_service_client::EmergencyLocationServiceClient::with_interceptor(
            self.channel.clone(),
            bearer(Some(&self.admin_key)),
        )
    }

    pub fn accounts_as(&self, key: Option<&str>) -> AccountServiceClient<Authed> {
        AccountServiceClient::with_interceptor(self.channel.clone(), bearer(key))
    }
    pub fn users_as(&self, key: Option<&str>) -> UserServiceClient<Authed> {
        UserServiceClient::with_interceptor(self.channel.clone(), bearer(key))
    }
    pub fn changes_as(&self, key: Option<&str>) -> ChangeServiceClient<Authed> {
        ChangeServiceClient::with_interceptor(self.channel.clone(), bearer(key))
    }
}

fn address_of(line: &serde_json::Value) -> SocketAddr {
    line["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line}"))
}

impl Drop for TestProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) and returns the status code, the headers
/// (lower-case names) and the body.
pub async fn http_request(
    address: SocketAddr,
    method: &str,
    path: &str,
) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the metrics listener");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("the metrics listener answers within 30 s")
        .unwrap();
    let raw = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .expect("a complete HTTP response");
    let mut head_lines = head.lines();
    let status = head_lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = head_lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}
