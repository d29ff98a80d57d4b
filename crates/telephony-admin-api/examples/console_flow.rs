//! The console's flow from a Rust service that depends on `telephony-admin-api` alone: create an
//! account and a user, order a number, assign it, turn calling and SMS on, watch the change
//! events, and unassign the number again.
//!
//! ```text
//! cargo run -- serve                      # in one terminal; note the printed key
//! TELEPHONY_ADMIN_KEY=tak_… cargo run -p telephony-admin-api --example console_flow
//! ```

use std::time::Duration;

use telephony_admin_api::prost_types::FieldMask;
use telephony_admin_api::tonic::{Request, metadata::MetadataValue, transport::Channel};
use telephony_admin_api::{
    AssignPhoneNumberRequest, CreateAccountRequest, CreatePhoneNumberOrderRequest,
    CreateUserRequest, LicenseType, PhoneNumberProductType, TelephonySettings,
    UnassignPhoneNumberRequest, UpdateTelephonySettingsRequest, WatchChangesRequest,
    account_service_client::AccountServiceClient, change_service_client::ChangeServiceClient,
    phone_number_service_client::PhoneNumberServiceClient,
    telephony_service_client::TelephonyServiceClient, user_service_client::UserServiceClient,
    watch_changes_response::Kind,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::var("TELEPHONY_ADMIN_ADDRESS")
        .unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let key = std::env::var("TELEPHONY_ADMIN_KEY")
        .map_err(|_| "set TELEPHONY_ADMIN_KEY to an admin API key")?;
    let bearer: MetadataValue<_> = format!("Bearer {key}").parse()?;
    let authorise = move |mut request: Request<()>| {
        request
            .metadata_mut()
            .insert("authorization", bearer.clone());
        Ok(request)
    };
    let channel = Channel::from_shared(address)?.connect().await?;
    let mut accounts = AccountServiceClient::with_interceptor(channel.clone(), authorise.clone());
    let mut users = UserServiceClient::with_interceptor(channel.clone(), authorise.clone());
    let mut numbers =
        PhoneNumberServiceClient::with_interceptor(channel.clone(), authorise.clone());
    let mut telephony =
        TelephonyServiceClient::with_interceptor(channel.clone(), authorise.clone());
    let mut changes = ChangeServiceClient::with_interceptor(channel, authorise);

    let account = accounts
        .create_account(CreateAccountRequest {
            name: "Example Corp".into(),
        })
        .await?
        .into_inner();
    let user = users
        .create_user(CreateUserRequest {
            account_id: account.account_id.clone(),
            email: format!("ann.{}@example.com", &account.account_id[..8]),
            display_name: "Ann Example".into(),
            license_type: LicenseType::Pro as i32,
            ..Default::default()
        })
        .await?
        .into_inner();

    // A number nobody has yet: try a few until one is acquired.
    let mut acquired = None;
    for last in 0..100 {
        let order = numbers
            .create_phone_number_order(CreatePhoneNumberOrderRequest {
                product_type: PhoneNumberProductType::BusinessCalling as i32,
                e164_phone_numbers: vec![format!("+1 206 555 01{last:02}")],
            })
            .await?
            .into_inner();
        if order.ordered_phone_numbers[0].reason.is_empty() {
            acquired = Some(order.ordered_phone_numbers[0].e164_phone_number.clone());
            break;
        }
    }
    let number = acquired.ok_or("no free example number left")?;

    // Follow this user's changes while we make them.
    let mut stream = changes
        .watch_changes(WatchChangesRequest {
            account_id: account.account_id.clone(),
            user_id: user.user_id.clone(),
            after_sequence: None,
            log_id: String::new(),
        })
        .await?
        .into_inner();

    let assigned = telephony
        .assign_phone_number(AssignPhoneNumberRequest {
            emergency_location_id: String::new(),
            account_id: account.account_id.clone(),
            user_id: user.user_id.clone(),
            e164_phone_number: number.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await?
        .into_inner();
    println!(
        "assigned {} to {}",
        assigned.primary_phone_number, assigned.email
    );

    let settings = telephony
        .update_telephony_settings(UpdateTelephonySettingsRequest {
            account_id: account.account_id.clone(),
            user_id: user.user_id.clone(),
            telephony_settings: Some(TelephonySettings {
                inbound_calling: true,
                outbound_calling: true,
                sms: true,
            }),
            update_mask: Some(FieldMask { paths: vec![] }),
            request_id: String::new(),
        })
        .await?
        .into_inner();
    println!("settings now {settings:?}");

    telephony
        .unassign_phone_number(UnassignPhoneNumberRequest {
            account_id: account.account_id.clone(),
            user_id: user.user_id.clone(),
            confirm: true,
            request_id: String::new(),
        })
        .await?;
    println!("unassigned {number}");

    let mut events = 0;
    while events < 3 {
        let Some(message) =
            tokio::time::timeout(Duration::from_secs(5), stream.message()).await??
        else {
            break;
        };
        if let Some(Kind::Event(event)) = message.kind {
            events += 1;
            println!("event {}: {}", event.sequence, event.notice);
        }
    }
    Ok(())
}
