//! The real `telephony-admin` binary as a child process, for what is per process: its metrics
//! registry and its trace exporter. It logs JSON on standard output; the harness reads the
//! addresses it bound from those lines and keeps every line for tests to search.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use telephony_admin::keys;
use tonic::transport::Channel;

use super::{Backend, TestDatabase, bearer};
use telephony_admin::proto::{
    account_service_client::AccountServiceClient, change_service_client::ChangeServiceClient,
    user_service_client::UserServiceClient,
};

/// A running server binary; killed when dropped.
pub struct TestProcess {
    child: Child,
    pub address: SocketAddr,
    /// Where `/metrics` is served, when `--metrics-listen` was given.
    pub metrics_address: Option<SocketAddr>,
    pub admin_key: String,
    pub channel: Channel,
    /// Every line written to standard output so far.
    lines: Arc<Mutex<Vec<String>>>,
    _database: TestDatabase,
}

impl TestProcess {
    /// Starts `telephony-admin serve` on a fresh database with `args` added, and waits until it
    /// listens (at most 60 s).
    pub async fn spawn(backend: Backend, args: &[&str], env: &[(&str, &str)]) -> Self {
        let database = TestDatabase::create(backend).await;
        let admin_key = keys::generate_secret();
        let mut command = Command::new(env!("CARGO_BIN_EXE_telephony-admin"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .env("DATABASE_URL", &database.url)
            .env("TELEPHONY_ADMIN_BOOTSTRAP_KEY", &admin_key)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start the telephony-admin binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        let mut process = Self {
            child,
            address: "0.0.0.0:0".parse().unwrap(),
            metrics_address: None,
            admin_key,
            channel: Channel::from_static("http://127.0.0.1:1").connect_lazy(),
            lines,
            _database: database,
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
                    self.lines.lock().unwrap().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "no matching log line within 60 s; output:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn accounts_as(&self, key: Option<&str>) -> AccountServiceClient<super::Authed> {
        AccountServiceClient::with_interceptor(self.channel.clone(), bearer(key))
    }
    pub fn users_as(&self, key: Option<&str>) -> UserServiceClient<super::Authed> {
        UserServiceClient::with_interceptor(self.channel.clone(), bearer(key))
    }
    pub fn changes_as(&self, key: Option<&str>) -> ChangeServiceClient<super::Authed> {
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
