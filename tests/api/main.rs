//! The end-to-end suite, as one test binary (linked once): every module starts real servers on
//! ephemeral ports with databases of their own and talks to them through typed gRPC clients.

#[macro_use]
mod common;

mod access_control;
mod accounts;
mod backup;
mod batch_numbers;
mod batch_renumbering;
mod batch_telephony;
mod batch_users;
mod browsers;
mod changes;
mod cli_bulk;
mod concurrency;
mod connections;
mod console;
mod dashboard;
mod emergency_locations;
mod faults;
mod group_commit;
mod hostile_input;
mod input_properties;
mod inventory_history;
mod mail;
mod metrics;
mod phone_numbers;
mod rate_limits;
mod reliability;
mod replicas;
mod revocation;
mod secrets_at_rest;
mod shutdown;
mod sign_out;
mod sign_out_access;
mod sign_out_delivery;
mod store_safety;
mod stream_encoding;
mod telephony;
mod traces;
mod transport;
mod users;
mod webhook_delivery;
mod webhook_replicas;
mod webhook_wake;
mod webhooks;
