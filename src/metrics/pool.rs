//! The database connection pool as the `/metrics` scrape reads it.

/// The database connection pool at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    pub in_use: u32,
    pub idle: u32,
}

impl PoolState {
    /// Reads the pool behind a SeaORM connection.
    pub fn of(db: &sea_orm::DatabaseConnection) -> Self {
        let (size, idle) = match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => {
                let pool = db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => {
                let pool = db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        Self {
            in_use: size - idle,
            idle,
        }
    }
}
