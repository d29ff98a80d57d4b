//! The gRPC channel of `import` and `export`, with the API key on every call.

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

    /// Every user of the account, following page tokens.
    pub async fn all_users(&self, account_id: &str) -> anyhow::Result<Vec<crate::proto::User>> {
        let mut users = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .users()
                .list_users(crate::proto::ListUsersRequest {
                    account_id: account_id.to_owned(),
                    page_size: 1000,
                    page_token,
                    ..Default::default()
                })
                .await
                .map_err(|s| anyhow::anyhow!("ListUsers: {}", s.message()))?
                .into_inner();
            users.extend(page.users);
            if page.next_page_token.is_empty() {
                return Ok(users);
            }
            page_token = page.next_page_token;
        }
    }
}

/// The longest a throttled call waits before it is sent again, whatever the server says.
const LONGEST_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

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
