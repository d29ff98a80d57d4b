//! The gRPC channel of `import` and `export`, with the API key on every call, and how a call is
//! sent again: after a throttle ([`patiently`]), and, when that is safe, after the server was
//! unavailable ([`resending`]).

use anyhow::Context;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::Connection;
use crate::proto::{
    change_service_client::ChangeServiceClient,
    phone_number_service_client::PhoneNumberServiceClient,
    telephony_service_client::TelephonyServiceClient, user_service_client::UserServiceClient,
};

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, Bearer>;

/// Typed clients over one connection.
pub struct Clients {
    channel: Channel,
    bearer: Bearer,
}

impl Clients {
    pub async fn connect(connection: &Connection) -> anyhow::Result<Self> {
        let bearer = Bearer(
            format!("Bearer {}", connection.key)
                .parse()
                .context("the API key is not printable ASCII")?,
        );
        let mut endpoint = Endpoint::from_shared(connection.endpoint.clone())
            .with_context(|| format!("{} is not an endpoint URL", connection.endpoint))?;
        if let Some(ca) = &connection.ca_cert {
            let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
            if let Some(name) = &connection.tls_server_name {
                tls = tls.domain_name(name.clone());
            }
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", connection.endpoint))?;
        Ok(Self { channel, bearer })
    }

    pub fn users(&self) -> UserServiceClient<Authed> {
        UserServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn numbers(&self) -> PhoneNumberServiceClient<Authed> {
        PhoneNumberServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn telephony(&self) -> TelephonyServiceClient<Authed> {
        TelephonyServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn changes(&self) -> ChangeServiceClient<Authed> {
        ChangeServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn emergency_locations(
        &self,
    ) -> crate::proto::emergency_location_service_client::EmergencyLocationServiceClient<Authed>
    {
        crate::proto::emergency_location_service_client::EmergencyLocationServiceClient::with_interceptor(
            self.channel.clone(),
            self.bearer.clone(),
        )
    }

    /// Every emergency location of the account, with its address.
    pub async fn all_locations(
        &self,
        account_id: &str,
    ) -> anyhow::Result<Vec<crate::proto::EmergencyLocation>> {
        every_page("ListEmergencyLocations", |page_token| {
            let mut locations = self.emergency_locations();
            let request = crate::proto::ListEmergencyLocationsRequest {
                account_id: account_id.to_owned(),
                page_size: 1000,
                page_token,
                ..Default::default()
            };
            async move {
                let page = locations
                    .list_emergency_locations(request)
                    .await?
                    .into_inner();
                Ok((page.locations, page.next_page_token))
            }
        })
        .await
    }

    /// Every user of the account.
    pub async fn all_users(&self, account_id: &str) -> anyhow::Result<Vec<crate::proto::User>> {
        every_page("ListUsers", |page_token| {
            let mut users = self.users();
            let request = crate::proto::ListUsersRequest {
                account_id: account_id.to_owned(),
                page_size: 1000,
                page_token,
                ..Default::default()
            };
            async move {
                let page = users.list_users(request).await?.into_inner();
                Ok((page.users, page.next_page_token))
            }
        })
        .await
    }
}

/// The longest a throttled call waits before it is sent again, whatever the server says.
const LONGEST_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// How long [`resending`] keeps sending a call while the server is unavailable: long enough
/// for a server to restart (an upgrade), or for a load balancer to move to another replica.
const UNAVAILABLE_FOR_AT_MOST: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs `call` until it is not throttled: a RESOURCE_EXHAUSTED answer with
/// `google.rpc.RetryInfo` (a rate limit) waits the time it names and calls again; any other
/// answer, other RESOURCE_EXHAUSTED ones included (too large, a full disk), is returned.
pub async fn patiently<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    use tonic_types::StatusExt;
    loop {
        match call().await {
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                let Some(wait) = status
                    .get_details_retry_info()
                    .and_then(|retry| retry.retry_delay)
                else {
                    return Err(status);
                };
                eprintln!(
                    "throttled by the server ({}); retrying in {:.1} s",
                    status.message(),
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait.min(LONGEST_WAIT)).await;
            }
            answer => return answer,
        }
    }
}

/// Runs `call` as [`patiently`] does, and also sends it again, after a growing wait, while its
/// answer is UNAVAILABLE: the server restarting or shutting down, a connection refused, lost,
/// or closed by a GOAWAY before the call got in. For a call whose second sending does no harm
/// only: a read, or a write with a `request_id`, which the server answers from the answer it
/// kept if the first one did take effect. Gives up, with the last answer, after
/// [`UNAVAILABLE_FOR_AT_MOST`].
pub async fn resending<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    use backon::BackoffBuilder;
    let mut waits = backon::ExponentialBuilder::new()
        .with_min_delay(std::time::Duration::from_millis(200))
        .with_max_delay(std::time::Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .with_total_delay(Some(UNAVAILABLE_FOR_AT_MOST))
        .build();
    loop {
        match patiently(&mut call).await {
            Err(status) if status.code() == tonic::Code::Unavailable => {
                let Some(wait) = waits.next() else {
                    return Err(status);
                };
                eprintln!(
                    "the server is unavailable ({}); sending again in {:.1} s",
                    status.message(),
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
            }
            answer => return answer,
        }
    }
}

/// Every item of a list, following its page tokens: `page(token)` asks for one page and
/// answers its items and the next token. Each page is sent again as [`resending`] does; a
/// refusal names `what`.
pub async fn every_page<T, F, Fut>(what: &str, mut page: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut items = Vec::new();
    let mut page_token = String::new();
    loop {
        let (found, next) = resending(|| page(page_token.clone()))
            .await
            .map_err(|s| anyhow::anyhow!("{what}: {}", s.message()))?;
        items.extend(found);
        if next.is_empty() {
            return Ok(items);
        }
        page_token = next;
    }
}
