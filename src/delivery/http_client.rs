//! The webhook HTTP client: one POST per attempt over HTTP/1.1 (`reqwest`), to an address checked
//! after name resolution. Host names are resolved by [`PublicResolver`], which checks every
//! address against the target policy (no loopback, link-local or private ranges unless allowed)
//! and hands the client only addresses that passed, so a name cannot pass the check and then
//! resolve elsewhere; a host that is an IP address is checked before the request, since it is
//! not resolved. Connections are kept for the next attempt to the same host. TLS uses rustls on
//! ring with the Mozilla root store (webpki-roots). No proxy is used and redirects are not
//! followed; at most [`MAX_RESPONSE_BYTES`] of a response body is read, for the error message.

use std::{
    error::Error as _,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio_rustls::rustls;

use crate::domain::DomainError;
use crate::domain::webhook::{TargetPolicy, WebhookUrl, check_address};

/// How much of a response body is read (for the error message).
pub const MAX_RESPONSE_BYTES: usize = 1024;
/// How long a request's name resolution may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one exchange may take, whatever the caller and the peer do.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(120);
/// How long an idle connection is kept for the next attempt.
const IDLE_CONNECTION: Duration = Duration::from_secs(60);
const USER_AGENT: &str = concat!("telephony-admin/", env!("CARGO_PKG_VERSION"));

pub struct HttpClient {
    client: reqwest::Client,
    policy: TargetPolicy,
}

impl HttpClient {
    pub fn new(policy: TargetPolicy) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .dns_resolver(PublicResolver { policy })
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .timeout(EXCHANGE_LIMIT)
            .pool_idle_timeout(IDLE_CONNECTION)
            .build()?;
        Ok(Self { client, policy })
    }

    /// POSTs `body` to `target`; `Ok` on a 2xx answer, else a message saying what went wrong.
    /// The caller bounds the whole exchange with a timeout.
    pub async fn post(
        &self,
        target: &WebhookUrl,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<(), String> {
        // The resolver sees host names only: an address is checked here.
        if let Ok(ip) = target.host.parse::<IpAddr>() {
            refuse_non_public(&target.host, ip, self.policy)?;
        }
        let mut request = self
            .client
            .post(target.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| describe(&target.host, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let mut excerpt = Vec::new();
        while excerpt.len() < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(data)) => {
                    let room = MAX_RESPONSE_BYTES - excerpt.len();
                    excerpt.extend_from_slice(&data[..data.len().min(room)]);
                }
                _ => break,
            }
        }
        let excerpt = String::from_utf8_lossy(&excerpt);
        let excerpt = crate::domain::truncate(excerpt.trim(), 200);
        Err(if excerpt.is_empty() {
            format!("the endpoint answered {status}")
        } else {
            format!("the endpoint answered {status}: {excerpt}")
        })
    }
}

/// Resolves host names for the client, and fails the request when any address of the name is
/// one the policy refuses.
#[derive(Debug, Clone, Copy)]
pub struct PublicResolver {
    policy: TargetPolicy,
}

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            // Port 0: the client puts the URL's port in.
            let addresses = resolve(name.as_str(), 0, policy).await.map_err(Refused)?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// Why a name was not resolved to addresses the client may call.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The addresses of `host`, every one of them allowed by the policy.
async fn resolve(host: &str, port: u16, policy: TargetPolicy) -> Result<Vec<SocketAddr>, String> {
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await
            {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(e)) => return Err(format!("cannot resolve {host}: {e}")),
                Err(_) => return Err(format!("{host} did not resolve in time")),
            }
        }
    };
    if addresses.is_empty() {
        return Err(format!("{host} has no address"));
    }
    for address in &addresses {
        refuse_non_public(host, address.ip(), policy)?;
    }
    Ok(addresses)
}

fn refuse_non_public(host: &str, ip: IpAddr, policy: TargetPolicy) -> Result<(), String> {
    check_address("url", ip, policy).map_err(|e| format!("refused to call {host}: {e}"))
}

/// Checks, for a request that names `target`, that its host resolves and only to addresses the
/// policy allows.
pub async fn check_target(
    field: &str,
    target: &WebhookUrl,
    policy: TargetPolicy,
) -> Result<(), DomainError> {
    resolve(&target.host, target.port, policy)
        .await
        .map(|_| ())
        .map_err(|message| DomainError::invalid(field, message))
}

/// What went wrong with a request, for the delivery's last error: the resolver's refusal as it
/// is, else the causes (never the URL, whose query may carry a token).
fn describe(host: &str, error: reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return refused.0.clone();
        }
        let text = cause.to_string();
        if !causes.contains(&text) {
            causes.push(text);
        }
        source = cause.source();
    }
    let causes = causes.join(": ");
    if error.is_connect() {
        format!("cannot connect to {host}: {causes}")
    } else if error.is_timeout() {
        format!(
            "no answer from {host} within {}",
            humantime::format_duration(EXCHANGE_LIMIT)
        )
    } else if causes.is_empty() {
        format!("the request failed: {}", error.without_url())
    } else {
        format!("the request failed: {causes}")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::domain::webhook::parse_webhook_url;

    const STRICT: TargetPolicy = TargetPolicy {
        allow_insecure: false,
    };
    const LAX: TargetPolicy = TargetPolicy {
        allow_insecure: true,
    };

    /// A loopback HTTP server that answers every request with `response` and keeps what it
    /// received.
    struct Server {
        port: u16,
        connections: Arc<AtomicUsize>,
        requests: Arc<std::sync::Mutex<Vec<String>>>,
    }

    async fn serve(response: String) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (counted, kept) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let (response, kept) = (response.clone(), kept.clone());
                tokio::spawn(async move {
                    let mut received = Vec::new();
                    let mut buffer = [0u8; 4096];
                    // The head, then as much body as it announces (the tests send little).
                    while !String::from_utf8_lossy(&received).contains("\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => received.extend_from_slice(&buffer[..n]),
                        }
                    }
                    kept.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&received).into_owned());
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Server {
            port,
            connections,
            requests,
        }
    }

    fn answer(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn url(raw: &str) -> WebhookUrl {
        parse_webhook_url("url", raw, LAX).expect("a URL the lax policy takes")
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_non_public_addresses_unless_allowed() {
        let strict = PublicResolver { policy: STRICT };
        let refused = match strict.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost resolved under the strict policy"),
            Err(error) => error.to_string(),
        };
        assert!(refused.contains("non-public address"), "{refused}");
        let lax = PublicResolver { policy: LAX };
        let addresses: Vec<SocketAddr> = lax
            .resolve("localhost".parse().unwrap())
            .await
            .expect("allowed")
            .collect();
        assert!(!addresses.is_empty());
        assert!(
            addresses.iter().all(|a| a.ip().is_loopback()),
            "{addresses:?}"
        );
    }

    #[tokio::test]
    async fn a_strict_client_never_connects_to_a_loopback_address() {
        let server = serve(answer("200 OK", "")).await;
        let client = HttpClient::new(STRICT).unwrap();
        for raw in [
            format!("http://localhost:{}/hook", server.port),
            format!("http://127.0.0.1:{}/hook", server.port),
            format!("http://[::ffff:127.0.0.1]:{}/hook", server.port),
        ] {
            let error = client
                .post(&url(&raw), &[], b"{}".to_vec())
                .await
                .expect_err("refused");
            assert!(error.contains("non-public address"), "{raw}: {error}");
        }
        assert_eq!(server.connections.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_post_carries_the_body_and_headers_and_a_2xx_is_success() {
        let server = serve(answer("204 No Content", "")).await;
        let client = HttpClient::new(LAX).unwrap();
        let target = url(&format!("http://localhost:{}/in?source=test", server.port));
        client
            .post(
                &target,
                &[("webhook-id", "msg_1".into())],
                br#"{"a":1}"#.to_vec(),
            )
            .await
            .expect("delivered");
        let request = server
            .requests
            .lock()
            .unwrap()
            .concat()
            .to_ascii_lowercase();
        assert!(
            request.starts_with("post /in?source=test http/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("content-type: application/json"),
            "{request}"
        );
        assert!(request.contains("webhook-id: msg_1"), "{request}");
        assert!(
            request.contains(&format!("host: localhost:{}", server.port)),
            "{request}"
        );
        assert!(
            request.contains("user-agent: telephony-admin/"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn an_error_answer_is_reported_with_an_excerpt_and_redirects_are_not_followed() {
        let failing = serve(answer("500 Internal Server Error", &"x".repeat(5000))).await;
        let client = HttpClient::new(LAX).unwrap();
        let error = client
            .post(
                &url(&format!("http://127.0.0.1:{}/", failing.port)),
                &[],
                Vec::new(),
            )
            .await
            .expect_err("a 500");
        assert!(error.starts_with("the endpoint answered 500"), "{error}");
        assert!(error.len() < 300, "{error}");

        let elsewhere = serve(answer("200 OK", "")).await;
        let redirecting = serve(format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{}/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            elsewhere.port
        ))
        .await;
        let error = client
            .post(
                &url(&format!("http://127.0.0.1:{}/", redirecting.port)),
                &[],
                Vec::new(),
            )
            .await
            .expect_err("a redirect is not success");
        assert!(error.starts_with("the endpoint answered 307"), "{error}");
        assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connection_failure() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let client = HttpClient::new(LAX).unwrap();
        let error = client
            .post(&url(&format!("http://127.0.0.1:{port}/")), &[], Vec::new())
            .await
            .expect_err("nothing listens");
        assert!(error.starts_with("cannot connect to 127.0.0.1"), "{error}");
    }
}
