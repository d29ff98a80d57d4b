//! The inventory's history and orders (`ListPhoneNumberOrders`, `ListPhoneNumberAssignments`),
//! and the checks of ListPhoneNumbers' region filters.

use tonic::{Request, Response, Status};

use super::{ApiContext, convert};
use crate::domain::DomainError;
use crate::domain::phone_number::{E164, NumberType};
use crate::proto;

/// Longest E.164 number: a prefix is "+" and 1 to 15 digits.
const MAX_E164_DIGITS: usize = 15;

/// `e164_prefix`: empty, or "+" and 1 to 15 digits.
pub fn e164_prefix(field: &str, raw: &str) -> Result<Option<String>, DomainError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let digits = raw.strip_prefix('+').unwrap_or("");
    if digits.is_empty()
        || digits.len() > MAX_E164_DIGITS
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(DomainError::invalid(
            field,
            "must be \"+\" followed by 1 to 15 digits, e.g. \"+1206\"",
        ));
    }
    Ok(Some(raw.to_owned()))
}

/// `country`: empty, or an ISO 3166-1 alpha-2 code (any case).
pub fn country(field: &str, raw: &str) -> Result<Option<String>, DomainError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() != 2 || !raw.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(DomainError::invalid(
            field,
            "must be an ISO 3166-1 alpha-2 region code, e.g. \"US\"",
        ));
    }
    Ok(Some(raw.to_ascii_uppercase()))
}

/// `type`: UNSPECIFIED (no filter), LOCAL or TOLL_FREE.
pub fn number_type(field: &str, value: i32) -> Result<Option<NumberType>, DomainError> {
    match proto::PhoneNumberType::try_from(value) {
        Ok(proto::PhoneNumberType::Unspecified) => Ok(None),
        Ok(proto::PhoneNumberType::Local) => Ok(Some(NumberType::Local)),
        Ok(proto::PhoneNumberType::TollFree) => Ok(Some(NumberType::TollFree)),
        Err(_) => Err(DomainError::invalid(
            field,
            format!("{value} is not a PhoneNumberType"),
        )),
    }
}

pub async fn list_orders(
    context: &ApiContext,
    request: Request<proto::ListPhoneNumberOrdersRequest>,
) -> Result<Response<proto::ListPhoneNumberOrdersResponse>, Status> {
    let caller = context.auth.authenticate(&request).await?;
    caller.require_reader()?;
    // As GetPhoneNumberOrder: orders are the organisation's.
    caller.require_organisation()?;
    let req = request.get_ref();
    let page = context.page(req.page_size, &req.page_token, "orders")?;
    let orders = context.store.orders().list(&page).await?;
    Ok(Response::new(proto::ListPhoneNumberOrdersResponse {
        phone_number_orders: orders.items.into_iter().map(convert::order).collect(),
        next_page_token: orders.next_page_token,
    }))
}

pub async fn list_assignments(
    context: &ApiContext,
    request: Request<proto::ListPhoneNumberAssignmentsRequest>,
) -> Result<Response<proto::ListPhoneNumberAssignmentsResponse>, Status> {
    let caller = context.auth.authenticate(&request).await?;
    caller.require_reader()?;
    let req = request.get_ref();
    let number = E164::parse("phone_number_id", &req.phone_number_id)?;
    // An account key sees its own account's periods only: no refusal, so nothing is revealed
    // about the number's other holders.
    let page = context.page(req.page_size, &req.page_token, &format!("number={number}"))?;
    let periods = context
        .store
        .inventory()
        .history(&number, caller.account(), &page)
        .await?;
    Ok(Response::new(proto::ListPhoneNumberAssignmentsResponse {
        phone_number_assignments: periods
            .items
            .into_iter()
            .map(|period| proto::PhoneNumberAssignment {
                e164_phone_number: period.e164.into(),
                account_id: period.account_id.into(),
                user_id: period.user_id.into(),
                assign_time: Some(convert::timestamp(period.assign_time)),
                unassign_time: period.unassign_time.map(convert::timestamp),
            })
            .collect(),
        next_page_token: periods.next_page_token,
    }))
}
