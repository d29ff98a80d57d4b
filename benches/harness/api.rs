//! The service's generated gRPC types, imported in this one place so that a change of their
//! path is a one-line fix, and the clients the harness talks to the service with.

pub use telephony_admin::proto::{
    AssignPhoneNumberRequest, BatchAssignPhoneNumbersRequest, BatchCreateUsersRequest,
    CreateAccountRequest, CreatePhoneNumberOrderRequest, CreateUserRequest,
    DeletePhoneNumberRequest, GetTelephonySettingsRequest, GetUserRequest, LicenseType,
    ListPhoneNumbersRequest, LogoutUserRequest, PhoneNumberProductType, PhoneNumberStatus,
    TelephonySettings, UnassignPhoneNumberRequest, UpdateTelephonySettingsRequest,
    WatchChangesRequest, account_service_client::AccountServiceClient,
    batch_assign_phone_numbers_request, batch_create_users_request,
    change_service_client::ChangeServiceClient,
    phone_number_service_client::PhoneNumberServiceClient,
    telephony_service_client::TelephonyServiceClient, user_service_client::UserServiceClient,
    watch_changes_response::Kind as WatchKind,
};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    pub fn new(secret: &str) -> anyhow::Result<Self> {
        Ok(Self(format!("Bearer {secret}").parse()?))
    }
}

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

pub type Authed = InterceptedService<Channel, Bearer>;

/// Typed clients on one connection, all carrying the same key.
#[derive(Clone)]
pub struct Clients {
    pub channel: Channel,
    pub bearer: Bearer,
}

impl Clients {
    pub fn new(channel: Channel, bearer: Bearer) -> Self {
        Self { channel, bearer }
    }
    pub fn accounts(&self) -> AccountServiceClient<Authed> {
        AccountServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
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
}

/// Opens `count` separate HTTP/2 connections to `address`.
pub async fn connect(address: std::net::SocketAddr, count: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        channels.push(
            Channel::from_shared(format!("http://{address}"))?
                .connect()
                .await?,
        );
    }
    Ok(channels)
}

/// An account, a user in it with a number assigned, through the API. Returns their ids.
pub async fn user_with_number(
    clients: &Clients,
    email: &str,
    number: &str,
    account_id: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let account_id = match account_id {
        Some(id) => id.to_owned(),
        None => create_account(clients, "Bench").await?,
    };
    let user_id = create_user(clients, &account_id, email).await?;
    order_numbers(clients, &[number.to_owned()]).await?;
    clients
        .telephony()
        .assign_phone_number(AssignPhoneNumberRequest {
            emergency_location_id: String::new(),
            account_id: account_id.clone(),
            user_id: user_id.clone(),
            e164_phone_number: number.to_owned(),
            request_id: String::new(),
        })
        .await?;
    Ok((account_id, user_id))
}

pub async fn create_account(clients: &Clients, name: &str) -> anyhow::Result<String> {
    Ok(clients
        .accounts()
        .create_account(CreateAccountRequest { name: name.into() })
        .await?
        .into_inner()
        .account_id)
}

pub async fn create_user(
    clients: &Clients,
    account_id: &str,
    email: &str,
) -> anyhow::Result<String> {
    Ok(clients
        .users()
        .create_user(CreateUserRequest {
            account_id: account_id.to_owned(),
            email: email.to_owned(),
            display_name: "Bench".into(),
            license_type: LicenseType::Pro as i32,
            ..Default::default()
        })
        .await?
        .into_inner()
        .user_id)
}

/// Acquires BUSINESS_CALLING numbers; fails unless every one was acquired.
pub async fn order_numbers(clients: &Clients, numbers: &[String]) -> anyhow::Result<()> {
    let order = clients
        .numbers()
        .create_phone_number_order(CreatePhoneNumberOrderRequest {
            product_type: PhoneNumberProductType::BusinessCalling as i32,
            e164_phone_numbers: numbers.to_vec(),
        })
        .await?
        .into_inner();
    let failed: Vec<_> = order
        .ordered_phone_numbers
        .iter()
        .filter(|n| !n.reason.is_empty())
        .map(|n| format!("{}: {}", n.e164_phone_number, n.reason))
        .collect();
    anyhow::ensure!(failed.is_empty(), "numbers not acquired: {failed:?}");
    Ok(())
}

/// `count` US numbers of one area code, as E.164 (exchange 2xx, at most 1,000,000).
pub fn numbers(area: u32, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("+1{area}{}", 2_000_000 + i))
        .collect()
}
