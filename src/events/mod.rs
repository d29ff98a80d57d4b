//! The change-event stream: from the outbox table to every watcher.
//!
//! - [`hub::ChangeHub`] is the one reader per process: when woken (a local commit, a PostgreSQL
//!   NOTIFY from another replica, or a periodic poll as a safety net) it loads new events from the
//!   outbox once and keeps the latest ones in a bounded in-memory ring.
//! - [`watcher`] runs one stream: replay from the database, then live events from the ring, with
//!   checkpoints. A watcher that falls behind the ring reads from the database again, so a slow
//!   consumer loses nothing and costs bounded memory.
//! - [`pg_listener`] turns PostgreSQL notifications into hub wake-ups.
//!
//! The outbox table is always the source of truth; wake-ups only say "look again".

pub mod hub;
pub mod pg_listener;
pub mod watcher;

pub use hub::ChangeHub;
pub use watcher::{Watch, WatchItem, WatchOptions, watch};
