//! One setting on every SQLite connection: the query planner stability guarantee (QPSG).
//!
//! SQLite 3.47 and later plan `LIMIT ?` (and a few other shapes) with the value bound at the
//! time, and mark the prepared statement to be prepared again whenever that parameter is bound
//! anew. Every query SeaORM builds binds its LIMIT (`.one()` is `LIMIT ?` with 1), so each
//! execution re-parsed and re-planned its statement: about a sixth of the CPU a GetUser cost
//! under load (`sqlite3Reprepare` in a `perf` profile). With QPSG on, a statement keeps the plan
//! it was prepared with, whatever is bound, so the statement cache works as intended.

use std::ffi::c_int;

use sqlx::sqlite::SqliteConnection;

/// Turns QPSG on for `connection`; run once, right after the connection opens.
pub(super) async fn keep_plans_stable(
    connection: &mut SqliteConnection,
) -> Result<(), sqlx::Error> {
    let mut handle = connection.lock_handle().await?;
    let raw = handle.as_raw_handle();
    // SAFETY: the handle is locked for the duration of the call, so no other call runs on this
    // connection meanwhile; SQLITE_DBCONFIG_ENABLE_QPSG takes an int and an optional int out
    // pointer (null: not wanted), as the SQLite documentation of sqlite3_db_config specifies.
    let code = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            raw.as_ptr(),
            libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
            1 as c_int,
            std::ptr::null_mut::<c_int>(),
        )
    };
    if code == libsqlite3_sys::SQLITE_OK {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!(
            "sqlite3_db_config(SQLITE_DBCONFIG_ENABLE_QPSG) failed with code {code}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::c_int;

    use crate::store::{Store, StoreOptions};

    /// Reads the QPSG flag of one connection (-1 asks without changing it).
    async fn qpsg_of(connection: &mut sqlx::sqlite::SqliteConnection) -> c_int {
        let mut handle = connection.lock_handle().await.expect("lock the handle");
        let mut on: c_int = -1;
        // SAFETY: as in `keep_plans_stable`; `on` outlives the call.
        unsafe {
            libsqlite3_sys::sqlite3_db_config(
                handle.as_raw_handle().as_ptr(),
                libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
                -1 as c_int,
                &mut on as *mut c_int,
            );
        }
        on
    }

    #[tokio::test]
    async fn every_sqlite_connection_keeps_its_query_plans() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("plans.db").display()
        );
        let options = StoreOptions {
            max_connections: 3,
            ..StoreOptions::default()
        };
        let store = Store::connect(&url, options).await.expect("connect");
        let pool = store.connection().get_sqlite_connection_pool();
        // Hold several at once, so that connections opened after the first are checked too.
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut connection = pool.acquire().await.expect("a pooled connection");
            assert_eq!(qpsg_of(&mut connection).await, 1);
            held.push(connection);
        }
        drop(held);
        // A connection opened without the store's options plans with what is bound.
        use sqlx::Connection;
        let mut plain = sqlx::sqlite::SqliteConnection::connect(&url)
            .await
            .expect("a plain connection");
        assert_eq!(qpsg_of(&mut plain).await, 0);
        store.close().await.expect("close");
    }
}
