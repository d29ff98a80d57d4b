//! One module per section of the harness. A later section is a module here and an entry in
//! `SECTIONS` in `main.rs`.

pub mod bulk;
pub mod listing;
pub mod reads;
pub mod replicas;
pub mod startup;
pub mod watch;
pub mod writes;
