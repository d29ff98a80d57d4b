//! What the store must keep safe under load and across tenants: purges that read only what they
//! delete, orders that cannot deadlock or hold numbers they do not change, assignment answers
//! that reveal nothing outside a key's account, account deletion that takes its keys along, and
//! idempotency records that belong to one tenant.

use telephony_admin::proto::PhoneNumber;

mod order_locks;
#[cfg(target_os = "linux")]
mod pg_sockets;
mod purges;
mod tenants;

/// The user a number is assigned to, if any.
fn holder(number: &PhoneNumber) -> Option<&str> {
    number.association.as_ref().map(|a| a.user_id.as_str())
}
