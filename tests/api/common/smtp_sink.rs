//! A real SMTP server on a loopback port, speaking enough of RFC 5321 (EHLO/HELO, MAIL, RCPT,
//! DATA, RSET, NOOP, QUIT) for a client library to submit mail to it. It keeps every message it
//! accepted, decoded far enough for tests to check the recipients, the subject and both parts.
//! It can be told to answer transient failures (451) for a while.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One accepted mail.
#[derive(Debug, Clone)]
pub struct Mail {
    pub mail_from: String,
    pub recipients: Vec<String>,
    pub headers: Vec<(String, String)>,
    /// The decoded text/plain part.
    pub text: String,
    /// The decoded text/html part.
    pub html: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct SmtpSink {
    pub address: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    failing: Arc<AtomicBool>,
    server: JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let failing = Arc::new(AtomicBool::new(false));
        let server = {
            let mails = mails.clone();
            let failing = failing.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let mails = mails.clone();
                    let failing = failing.clone();
                    tokio::spawn(async move {
                        let _ = session(stream, mails, failing).await;
                    });
                }
            })
        };
        Self {
            address,
            mails,
            failing,
            server,
        }
    }

    /// The `--smtp-url` of this sink.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.address)
    }

    /// While set, every RCPT gets a transient failure (451).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Mail> {
        self.wait_until(count, within, |mails| mails.len()).await
    }

    /// Waits until `count` different messages (by Message-ID) arrived.
    pub async fn wait_for_distinct(&self, count: usize, within: Duration) -> Vec<Mail> {
        self.wait_until(count, within, |mails| {
            let mut ids: Vec<&str> = mails
                .iter()
                .filter_map(|m| m.header("Message-ID"))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        })
        .await
    }

    async fn wait_until(
        &self,
        count: usize,
        within: Duration,
        counted: impl Fn(&[Mail]) -> usize,
    ) -> Vec<Mail> {
        super::wait_for_count(
            count,
            within,
            || self.mails(),
            counted,
            |got| format!("the SMTP sink got {got} of {count} mails within {within:?}"),
        )
        .await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn session(
    stream: tokio::net::TcpStream,
    mails: Arc<Mutex<Vec<Mail>>>,
    failing: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write
        .write_all(b"220 sink.test ESMTP test sink\r\n")
        .await?;
    let mut mail_from = String::new();
    let mut recipients = Vec::new();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                write
                    .write_all(b"250-sink.test greets you\r\n250-8BITMIME\r\n250 SIZE 10000000\r\n")
                    .await?
            }
            "HELO" => write.write_all(b"250 sink.test\r\n").await?,
            "MAIL" => {
                mail_from = between(&command, '<', '>');
                recipients.clear();
                write.write_all(b"250 OK\r\n").await?;
            }
            "RCPT" => {
                if failing.load(Ordering::SeqCst) {
                    write.write_all(b"451 4.3.0 try again later\r\n").await?;
                } else {
                    recipients.push(between(&command, '<', '>'));
                    write.write_all(b"250 OK\r\n").await?;
                }
            }
            "DATA" => {
                write
                    .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    let mut line = String::new();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    // Dot-stuffing.
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                let mail = parse(&mail_from, &recipients, &data);
                mails.lock().unwrap().push(mail);
                write.write_all(b"250 OK queued\r\n").await?;
            }
            "RSET" => {
                mail_from.clear();
                recipients.clear();
                write.write_all(b"250 OK\r\n").await?;
            }
            "NOOP" => write.write_all(b"250 OK\r\n").await?,
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => write.write_all(b"502 command not implemented\r\n").await?,
        }
    }
}

fn between(text: &str, open: char, close: char) -> String {
    text.split_once(open)
        .and_then(|(_, rest)| rest.split_once(close))
        .map(|(inside, _)| inside.to_owned())
        .unwrap_or_default()
}

/// Headers (unfolded) and body of a message or a MIME part.
fn split_headers(raw: &str) -> (Vec<(String, String)>, String) {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    (headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn decode(headers: &[(String, String)], body: &str) -> String {
    match header(headers, "Content-Transfer-Encoding") {
        Some(e) if e.eq_ignore_ascii_case("base64") => {
            let compact: String = body.split_whitespace().collect();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("base64 part"),
            )
            .expect("UTF-8 part")
        }
        _ => body.to_owned(),
    }
}

fn parse(mail_from: &str, recipients: &[String], data: &str) -> Mail {
    let (headers, body) = split_headers(data);
    let content_type = header(&headers, "Content-Type").unwrap_or("").to_owned();
    let mut text = String::new();
    let mut html = String::new();
    if let Some(boundary) = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
    {
        let boundary = format!("--{}", boundary.trim_matches('"'));
        for part in body.split(boundary.as_str()).skip(1) {
            if part.starts_with("--") {
                break;
            }
            let (part_headers, part_body) = split_headers(part.trim_start_matches("\r\n"));
            let decoded = decode(&part_headers, part_body.trim_end());
            let kind = header(&part_headers, "Content-Type").unwrap_or("");
            if kind.starts_with("text/plain") {
                text = decoded;
            } else if kind.starts_with("text/html") {
                html = decoded;
            }
        }
    } else {
        text = decode(&headers, &body);
    }
    Mail {
        mail_from: mail_from.to_owned(),
        recipients: recipients.to_vec(),
        headers,
        text,
        html,
    }
}
