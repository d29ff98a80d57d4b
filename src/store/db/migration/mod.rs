//! Schema migrations (SeaORM). They run on every start and with the `migrate` subcommand.

use sea_orm_migration::prelude::*;

mod m0001_initial;
mod m0002_revocations_and_number_indexes;
mod m0003_change_log_identity;
mod m0005_delivery;
mod m0006_scoped_idempotency_and_purge_indexes;
mod m0007_sign_out_pending;
mod m0008_number_history_and_inventory_indexes;
mod m0009_staged_changes;
mod m0010_change_kind_codes;
mod m0011_emergency_locations;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_revocations_and_number_indexes::Migration),
            Box::new(m0003_change_log_identity::Migration),
            Box::new(m0005_delivery::Migration),
            Box::new(m0006_scoped_idempotency_and_purge_indexes::Migration),
            Box::new(m0007_sign_out_pending::Migration),
            Box::new(m0008_number_history_and_inventory_indexes::Migration),
            Box::new(m0009_staged_changes::Migration),
            Box::new(m0010_change_kind_codes::Migration),
            Box::new(m0011_emergency_locations::Migration),
        ]
    }
}
