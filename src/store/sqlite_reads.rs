//! The hottest read on SQLite, GetUser's one indexed query, run on the calling thread.
//!
//! sqlx gives each SQLite connection a thread of its own and hands it every statement over a
//! channel: under load, waking that thread and being woken by it (futex, context switches) cost
//! several times what SQLite spends on the query itself. Here the same query runs on a
//! connection of its own (rusqlite, on the same SQLite library as sqlx; opened `query_only`,
//! the statement prepared once), straight from the task that asks: it is an indexed lookup of
//! one row, in microseconds, in its own implicit read transaction, so it sees exactly what a
//! query through the pool would. It never waits: a busy database is not waited for.
//!
//! Anything unexpected (the connection cannot be opened, the database is busy, a value is not
//! in the form the store writes) is not an error here: the caller runs the query through the
//! pool instead, which reports errors as every other read does.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use sea_orm::ActiveEnum;

use super::entities::{enums, user};
use super::users::UserView;
use crate::domain::ids::{AccountId, UserId};

/// The same row as `users::find_user_view`: the user and the E.164 of the number they hold.
const USER_VIEW: &str = "SELECT u.id, u.account_id, u.email, u.display_name, u.license_type, \
    u.inbound_calling, u.outbound_calling, u.sms, u.create_time, u.update_time, \
    u.sign_out_pending_oldest_sequence, u.sign_out_pending_oldest_time, \
    u.sign_out_pending_latest_sequence, u.sign_out_pending_latest_time, p.e164 \
    FROM users AS u LEFT JOIN phone_numbers AS p ON p.user_id = u.id \
    WHERE u.id = ?1 AND u.account_id = ?2";

/// Connections of one SQLite file for [`DirectReads::user_view`], kept while idle up to
/// `max_idle` (a connection is held only while a query runs, without awaiting, so no more are
/// in use at once than threads run tasks).
pub(super) struct DirectReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
    /// Set when a connection could not be opened or the query not prepared (that would not
    /// change from one call to the next), or when the store closes: every read goes to the
    /// pool from then on.
    disabled: AtomicBool,
}

impl DirectReads {
    /// Reads of the database file at `path`; no connection is opened until the first read.
    pub(super) fn new(path: &Path) -> Option<Self> {
        let max_idle = std::thread::available_parallelism().map_or(2, |n| n.get());
        Some(Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            max_idle,
            disabled: AtomicBool::new(false),
        })
    }

    /// The user and their number: `Some(None)` when there is no such user, `None` when this
    /// path cannot answer (the caller then asks the pool).
    pub(super) fn user_view(
        &self,
        account_id: &AccountId,
        user_id: &UserId,
    ) -> Option<Option<UserView>> {
        if self.disabled.load(Ordering::Relaxed) {
            return None;
        }
        let connection = match self.take() {
            Some(connection) => connection,
            None => match open(&self.path) {
                Ok(connection) => connection,
                Err(error) => {
                    if !self.disabled.swap(true, Ordering::Relaxed) {
                        tracing::warn!(%error, "cannot read users directly from the SQLite file; reading them through the pool");
                    }
                    return None;
                }
            },
        };
        let answer = read_user_view(&connection, user_id.as_str(), account_id.as_str());
        // A connection whose query failed (busy, say) is fine for the next one.
        self.put_back(connection);
        match answer {
            Ok(Some(Some(view))) => Some(Some(view)),
            Ok(None) => Some(None),
            // A row not in the form the store writes, or an error: the pool answers.
            Ok(Some(None)) | Err(_) => None,
        }
    }

    /// Closes the idle connections; every later read goes to the pool.
    pub(super) fn close(&self) {
        self.disabled.store(true, Ordering::Relaxed);
        self.idle_list().clear();
    }

    fn take(&self) -> Option<Connection> {
        self.idle_list().pop()
    }

    fn put_back(&self, connection: Connection) {
        if self.disabled.load(Ordering::Relaxed) {
            return;
        }
        let mut idle = self.idle_list();
        if idle.len() < self.max_idle {
            idle.push(connection);
        }
    }

    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection that only reads, never waits for a lock, and has the query prepared.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(Duration::ZERO)?;
    connection.pragma_update(None, "query_only", true)?;
    connection.prepare_cached(USER_VIEW)?;
    Ok(connection)
}

/// `None`: no such user; `Some(None)`: a row not in the form the store writes.
fn read_user_view(
    connection: &Connection,
    user_id: &str,
    account_id: &str,
) -> rusqlite::Result<Option<Option<UserView>>> {
    connection
        .prepare_cached(USER_VIEW)?
        .query_row((user_id, account_id), |row| Ok(user_view(row)))
        .optional()
}

fn user_view(row: &Row<'_>) -> Option<UserView> {
    let time = |column: usize| -> Option<DateTime<Utc>> {
        // Times are stored as RFC 3339 text (what sqlx writes); other forms go to the pool.
        let text: String = row.get(column).ok()?;
        DateTime::parse_from_rfc3339(&text)
            .ok()
            .map(|time| time.with_timezone(&Utc))
    };
    let optional_time = |column: usize| -> Option<Option<DateTime<Utc>>> {
        match row.get::<_, Option<String>>(column).ok()? {
            None => Some(None),
            Some(_) => time(column).map(Some),
        }
    };
    let license: String = row.get(4).ok()?;
    let model = user::Model {
        id: row.get(0).ok()?,
        account_id: row.get(1).ok()?,
        email: row.get(2).ok()?,
        display_name: row.get(3).ok()?,
        license_type: enums::LicenseType::try_from_value(&license).ok()?,
        inbound_calling: row.get(5).ok()?,
        outbound_calling: row.get(6).ok()?,
        sms: row.get(7).ok()?,
        create_time: time(8)?,
        update_time: time(9)?,
        sign_out_pending_oldest_sequence: row.get(10).ok()?,
        sign_out_pending_oldest_time: optional_time(11)?,
        sign_out_pending_latest_sequence: row.get(12).ok()?,
        sign_out_pending_latest_time: optional_time(13)?,
    };
    let phone_number: Option<String> = row.get(14).ok()?;
    Some(UserView::new(model, phone_number))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::phone_number::{E164, ProductType};
    use crate::domain::user::{DisplayName, Email, LicenseType};
    use crate::store::{Requester, Store, StoreOptions, users::find_user_view};

    /// The direct read and the pool's query give the same answers, and the direct read does
    /// answer (it does not fall back) for a user with and without a number, and for no user.
    #[tokio::test]
    async fn the_direct_read_answers_as_the_pool_does() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("reads.db").display()
        );
        let store = Store::connect(&url, StoreOptions::default())
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        let account = store.create_account("a".into()).await.expect("account");
        let account_id = AccountId::parse("account_id", &account.account_id).expect("id");
        let user = |email: &str| {
            let store = store.clone();
            let account_id = account_id.clone();
            let email = Email::parse("email", email).expect("email");
            async move {
                let name = DisplayName::parse("display_name", "Ann").expect("name");
                let user = store
                    .create_user(&account_id, email, name, LicenseType::Pro)
                    .await
                    .expect("user");
                UserId::parse("user_id", &user.user_id).expect("id")
            }
        };
        let (with_number, without) = (user("a@example.com").await, user("b@example.com").await);
        let number = E164::parse("number", "+12065550100").expect("number");
        store
            .create_phone_number_order(ProductType::BusinessCalling, &[number.to_string()])
            .await
            .expect("order");
        let caller = Requester {
            key_id: "k",
            account: None,
        };
        store
            .assign_phone_number(&account_id, &with_number, &number, None, caller)
            .await
            .expect("assign");
        let other_account =
            AccountId::parse("account_id", &uuid::Uuid::new_v4().to_string()).expect("id");
        let unknown = UserId::parse("user_id", &uuid::Uuid::new_v4().to_string()).expect("id");

        let direct = store
            .direct
            .as_ref()
            .expect("direct reads on a SQLite file");
        for (account_id, user_id) in [
            (&account_id, &with_number),
            (&account_id, &without),
            (&account_id, &unknown),
            (&other_account, &with_number),
        ] {
            let pooled = find_user_view(store.connection(), account_id, user_id)
                .await
                .expect("the pool's answer");
            let answered = direct.user_view(account_id, user_id);
            assert_eq!(answered, Some(pooled), "{account_id}/{user_id}");
        }
        let held = direct
            .user_view(&account_id, &with_number)
            .flatten()
            .expect("the user");
        assert_eq!(held.phone_number.as_deref(), Some("+12065550100"));
    }

    #[test]
    fn a_file_that_cannot_be_opened_leaves_every_read_to_the_pool() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let reads =
            DirectReads::new(&dir.path().join("missing").join("db.sqlite")).expect("a path");
        let account_id =
            AccountId::parse("account_id", &uuid::Uuid::new_v4().to_string()).expect("id");
        let user_id = UserId::parse("user_id", &uuid::Uuid::new_v4().to_string()).expect("id");
        assert_eq!(reads.user_view(&account_id, &user_id), None);
        assert!(reads.disabled.load(Ordering::Relaxed));
        assert_eq!(reads.user_view(&account_id, &user_id), None);
    }
}
