//! SeaORM entities: one table each. Relations are kept in the repository's queries, not here.

pub mod account;
pub mod api_key;
pub mod change_event;
pub mod change_event_staged;
pub mod change_log;
pub mod delivery;
pub mod emergency_address;
pub mod emergency_location;
pub mod emergency_location_use;
pub mod enums;
pub mod idempotency_record;
pub mod phone_number;
pub mod phone_number_assignment;
pub mod phone_number_order;
pub mod user;
pub mod webhook;
