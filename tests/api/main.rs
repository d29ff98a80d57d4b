//! The end-to-end suite, as one test binary (linked once): every module starts real servers on
//! ephemeral ports with databases of their own and talks to them through typed gRPC clients.

#[macro_use]
mod common;

mod access_control;
mod accounts;
mod changes;
mod concurrency;
mod hostile_input;
mod input_properties;
mod mail;
mod phone_numbers;
mod replicas;
mod revocation;
mod telephony;
mod transport;
mod users;
mod webhook_delivery;
mod webhook_replicas;
mod webhooks;
