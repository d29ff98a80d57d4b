//! The webhook HTTP client: one POST per attempt over HTTP/1.1, to an address checked after name
//! resolution. The host name is resolved here, every address is checked against the target policy
//! (no loopback, link-local or private ranges unless allowed), and the connection goes to an
//! address that was checked, so a name cannot pass the check and then resolve elsewhere. TLS uses
//! the Mozilla root store (webpki-roots). Redirects are not followed; at most
//! [`MAX_RESPONSE_BYTES`] of a response body is read, for the error message.

use std::{net::SocketAddr, sync::Arc};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

use crate::domain::DomainError;
use crate::domain::webhook::{TargetPolicy, WebhookUrl, check_address};

/// How much of a response body is read (for the error message).
pub const MAX_RESPONSE_BYTES: usize = 1024;
/// How long a request's name resolution may take.
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// The longest a connection lives, whatever the peer does.
const CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(120);
const USER_AGENT: &str = concat!("telephony-admin/", env!("CARGO_PKG_VERSION"));

pub struct HttpClient {
    tls: TlsConnector,
    policy: TargetPolicy,
}

impl HttpClient {
    pub fn new(policy: TargetPolicy) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            policy,
        })
    }

    /// POSTs `body` to `target`; `Ok` on a 2xx answer, else a message saying what went wrong.
    /// The caller bounds the whole exchange with a timeout.
    pub async fn post(
        &self,
        target: &WebhookUrl,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<(), String> {
        let addresses = resolve(target, self.policy).await?;
        let mut last_error = String::from("no address to connect to");
        let mut connected = None;
        for address in addresses {
            match TcpStream::connect(address).await {
                Ok(stream) => {
                    connected = Some(stream);
                    break;
                }
                Err(e) => last_error = format!("cannot connect to {address}: {e}"),
            }
        }
        let stream = connected.ok_or(last_error)?;
        let _ = stream.set_nodelay(true);
        let mut request = http::Request::post(target.path_and_query())
            .header(http::header::HOST, host_header(target))
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, USER_AGENT);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        if target.https {
            let name = ServerName::try_from(target.host.clone())
                .map_err(|e| format!("invalid TLS server name {}: {e}", target.host))?;
            let stream = self
                .tls
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS handshake with {} failed: {e}", target.host))?;
            exchange(stream, request).await
        } else {
            exchange(stream, request).await
        }
    }
}

/// The addresses of the target's host, every one of them allowed by the policy.
async fn resolve(target: &WebhookUrl, policy: TargetPolicy) -> Result<Vec<SocketAddr>, String> {
    let addresses: Vec<SocketAddr> = match target.host.parse() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
            .collect(),
    };
    if addresses.is_empty() {
        return Err(format!("{} has no address", target.host));
    }
    for address in &addresses {
        check_address("url", address.ip(), policy)
            .map_err(|e| format!("refused to call {}: {e}", target.host))?;
    }
    Ok(addresses)
}

/// Checks, for a request that names `target`, that its host resolves and only to addresses the
/// policy allows.
pub async fn check_target(
    field: &str,
    target: &WebhookUrl,
    policy: TargetPolicy,
) -> Result<(), DomainError> {
    match tokio::time::timeout(RESOLVE_TIMEOUT, resolve(target, policy)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(message)) => Err(DomainError::invalid(field, message)),
        Err(_) => Err(DomainError::invalid(
            field,
            format!("{} did not resolve in time", target.host),
        )),
    }
}

fn host_header(target: &WebhookUrl) -> String {
    let host = match target.url.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        _ => target.host.clone(),
    };
    match target.url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

async fn exchange<S>(stream: S, request: http::Request<Full<Bytes>>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    // The connection ends when the sender is dropped or the peer closes it; a peer that does
    // neither is cut off.
    tokio::spawn(async move {
        let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("the request failed: {e}"))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let mut body = response.into_body();
    let mut excerpt = Vec::new();
    while excerpt.len() < MAX_RESPONSE_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = MAX_RESPONSE_BYTES - excerpt.len();
                    excerpt.extend_from_slice(&data[..data.len().min(room)]);
                }
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
