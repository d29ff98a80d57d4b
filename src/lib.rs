//! # telephony-admin
//!
//! A gRPC service that administers business-calling phone numbers: accounts and their users,
//! the organisation's number inventory, assigning a number to a user, their calling and SMS
//! permissions, and a durable stream of the changes each user must sign in again to pick up.
//!
//! # Layout
//!
//! | module | what it is |
//! |---|---|
//! | [`config`] | the server's flags and environment variables, with defaults (the command line itself, its subcommands, is the binary's `main.rs`) |
//! | [`defaults`] | the defaults that the flags, the store's options and the bulk commands share |
//! | [`cli`] | `import` and `export`: bulk work as a gRPC client of a running service |
//! | [`database_url`] | database URLs in messages, without their credentials |
//! | [`telemetry`] | the `tracing` subscriber and its log format, OTLP trace export, the per-RPC span/log and metrics layers |
//! | [`metrics`] | the Prometheus registry and the `record_…` hooks the other modules call, with plain label values |
//! | [`metrics_server`] | the `/metrics` HTTP listener |
//! | [`startup`] | builds and runs the server: health, routes (gRPC-Web and CORS for browsers, the console's files from the `telephony-admin-console` crate), the connection gate (handshake deadline, connection cap), serving each connection and its lifecycle (age, idle, GOAWAY); shutdown |
//! | [`codec`] | the protobuf codec of every service: prost's, with a small per-stream encode buffer |
//! | [`proto`] | the gRPC contract: messages, clients and descriptor set from the `telephony-admin-api` crate (which other services use alone), and the service traits |
//! | [`domain`] | the rules, without I/O: ids, e-mail addresses, names and numbers as types parsed once at the edge; assignment, permissions, notices, who still has to sign out; emergency addresses and their offline validation |
//! | [`store`] | persistence in three layers, `use_cases → engine → db`: one use case file per aggregate (single and batch forms together), the write engine (group commit, set runs, idempotency, outbox, sequencer), and the tables (entities, migrations, read models); answers with read models and domain types, rows never leave it |
//! | [`api`] | one tonic service per module, its batch RPCs in its `batch` submodule on the shared [`api::batch`]; the request parsing an RPC and its batch share in [`api::requests`]; authentication with a cache of verified keys ([`api::key_cache`], moka) and per-key rate limits ([`api::rate_limit`], governor); errors → `Status` in [`api::status`], which also counts database errors |
//! | [`convert`] | the change event in the contract's forms: protobuf (the API) and proto3 JSON (webhook bodies), side by side |
//! | [`events`] | the change hub and the watch streams |
//! | [`delivery`] | push delivery of change events: webhooks (reqwest, to public addresses only) and e-mail to users, with cursors, retries (backon) and leases |
//! | [`keys`] | API key secrets, roles and scopes |
//! | [`secrets_key`] | secrets at rest: the key file and AES-256-GCM sealing of webhook signing secrets |
//! | [`backup`] | `backup` and `restore` of the SQLite database, and the change log's new identity after a restore (`new-log-epoch`) |
//! | [`maintenance`] | retention and the deletion-queue purge |
//! | [`error`] | the crate's error type |
//! | [`tasks`] | the tracked background tasks that shutdown waits for |
//!
//! Dependencies point one way; no file or folder imports one that imports it back
//! (`.ci/module-cycles.py src` checks it in CI):
//! - `api → store → domain`, `api → domain`; inside the store `use_cases → engine → db`;
//!   `api → events → store`, `api → delivery` (target checks), `delivery → store`,
//!   `delivery → events` (the hub's head only);
//! - `api → convert` and `delivery → convert` (the change event's forms), `convert → proto,
//!   domain`: the deliveries never import the API;
//! - `cli` uses only the gRPC contract ([`proto`]) and [`defaults`]; `config → defaults, store,
//!   delivery, domain, telemetry` (the settings each takes), never `cli`; the binary joins the
//!   two into its command line;
//! - `store → secrets_key` (it seals and opens the secrets it stores), which imports nothing
//!   of the crate;
//! - `error → domain` only, and `metrics` imports neither `error` nor `store`: the layer that
//!   handles an error observes it (`api::status` counts database errors);
//! - in `api`: each service module → its `batch` submodule → [`api::batch`], both →
//!   [`api::requests`]; `auth → key_cache → caller`, `auth → rate_limit → caller`;
//! - `startup` joins `config`, `api`, `store`, `events` and `delivery` into a server, and
//!   `backup → startup, store` (it opens the database as the server does).

pub mod api;
pub mod backup;
pub mod cli;
pub mod codec;
pub mod config;
pub mod convert;
pub mod database_url;
pub mod defaults;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod events;
pub mod keys;
pub mod maintenance;
pub mod metrics;
pub mod metrics_server;
pub mod proto;
pub mod secrets_key;
pub mod startup;
pub mod store;
pub mod tasks;
pub mod telemetry;
