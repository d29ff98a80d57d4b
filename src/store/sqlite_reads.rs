//! The hottest read on SQLite, GetUser's one indexed query, run on the calling thread.
//!
//! sqlx gives each SQLite connection a thread of its own and hands it every statement over a
//! channel: under load, waking that thread and being woken by it (futex, context switches) cost
//! several times what SQLite spends on the query itself. Here the same query runs on a
//! connection of its own (opened `query_only`, the statement prepared once), straight from the
//! task that asks: it is an indexed lookup of one row, in microseconds, in its own implicit read
//! transaction, so it sees exactly what a query through the pool would.
//!
//! Anything unexpected (the connection cannot be opened, the database is busy, a value is not
//! in the form the store writes) is not an error here: the caller runs the query through the
//! pool instead, which reports errors as every other read does.

use std::ffi::{CStr, CString, c_int};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use libsqlite3_sys as ffi;
use sea_orm::ActiveEnum;

use super::entities::{enums, user};
use super::users::UserView;
use crate::domain::ids::{AccountId, UserId};

/// The same row as `users::find_user_view`: the user and the E.164 of the number they hold.
const USER_VIEW: &CStr = c"SELECT u.id, u.account_id, u.email, u.display_name, u.license_type, \
    u.inbound_calling, u.outbound_calling, u.sms, u.create_time, u.update_time, \
    u.sign_out_pending_oldest_sequence, u.sign_out_pending_oldest_time, \
    u.sign_out_pending_latest_sequence, u.sign_out_pending_latest_time, p.e164 \
    FROM users AS u LEFT JOIN phone_numbers AS p ON p.user_id = u.id \
    WHERE u.id = ?1 AND u.account_id = ?2";

/// Connections of one SQLite file for [`DirectReads::user_view`], kept while idle up to
/// `max_idle` (a connection is held only while a query runs, without awaiting, so no more are
/// in use at once than threads run tasks).
pub(super) struct DirectReads {
    path: CString,
    idle: Mutex<Vec<Reader>>,
    max_idle: usize,
    /// Set when a connection could not be opened or the query not prepared: that would not
    /// change from one call to the next, so every read goes to the pool from then on.
    disabled: AtomicBool,
}

impl DirectReads {
    /// Reads of the database file at `path`; no connection is opened until the first read.
    pub(super) fn new(path: &Path) -> Option<Self> {
        let path = CString::new(path.to_str()?).ok()?;
        let max_idle = std::thread::available_parallelism().map_or(2, |n| n.get());
        Some(Self {
            path,
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
        let reader = match self.take() {
            Some(reader) => reader,
            None => match Reader::open(&self.path) {
                Ok(reader) => reader,
                Err(error) => {
                    if !self.disabled.swap(true, Ordering::Relaxed) {
                        tracing::warn!(%error, "cannot read users directly from the SQLite file; reading them through the pool");
                    }
                    return None;
                }
            },
        };
        match reader.user_view(user_id.as_str(), account_id.as_str()) {
            Step::Answered(user) => {
                self.put_back(reader);
                Some(user)
            }
            // This row only, or nothing that says the connection is at fault.
            Step::Unreadable => {
                self.put_back(reader);
                None
            }
            // Busy or failing: a fresh connection next time.
            Step::Failed => None,
        }
    }

    /// Closes the idle connections; later reads go to the pool, which is closing too.
    pub(super) fn close(&self) {
        self.disabled.store(true, Ordering::Relaxed);
        self.idle_list().clear();
    }

    fn take(&self) -> Option<Reader> {
        self.idle_list().pop()
    }

    fn put_back(&self, reader: Reader) {
        let mut idle = self.idle_list();
        if idle.len() < self.max_idle {
            idle.push(reader);
        }
    }

    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<Reader>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One connection and its prepared statement.
struct Reader {
    db: NonNull<ffi::sqlite3>,
    user_view: NonNull<ffi::sqlite3_stmt>,
}

// SAFETY: the connection is opened with SQLITE_OPEN_NOMUTEX (SQLite's multi-thread mode): it may
// move between threads as long as one thread uses it at a time, which owning it guarantees.
unsafe impl Send for Reader {}

/// What one run of the query gave.
enum Step {
    Answered(Option<UserView>),
    /// A row in a form this path does not read.
    Unreadable,
    /// SQLite answered with an error (e.g. busy).
    Failed,
}

impl Reader {
    fn open(path: &CStr) -> Result<Self, String> {
        let mut db = ptr::null_mut();
        // SAFETY: `path` is NUL-terminated; `db` receives the handle (or one to close on error).
        let code = unsafe {
            ffi::sqlite3_open_v2(
                path.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX,
                ptr::null(),
            )
        };
        let db = NonNull::new(db).ok_or("out of memory")?;
        let close = |db: NonNull<ffi::sqlite3>, step: &str| {
            // SAFETY: `db` came from sqlite3_open_v2 and has no statement yet; the message is
            // read before the handle closes.
            let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr())) }
                .to_string_lossy()
                .into_owned();
            // SAFETY: as above.
            unsafe { ffi::sqlite3_close(db.as_ptr()) };
            Err(format!("{step}: {message}"))
        };
        if code != ffi::SQLITE_OK {
            return close(db, "open");
        }
        // Nothing here writes; query_only makes sure of it.
        // SAFETY: `db` is open; the SQL is NUL-terminated; no callback.
        if unsafe {
            ffi::sqlite3_exec(
                db.as_ptr(),
                c"PRAGMA query_only = ON".as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        } != ffi::SQLITE_OK
        {
            return close(db, "query_only");
        }
        let mut statement = ptr::null_mut();
        // SAFETY: `db` is open; the SQL is NUL-terminated (-1: up to the NUL).
        let code = unsafe {
            ffi::sqlite3_prepare_v3(
                db.as_ptr(),
                USER_VIEW.as_ptr(),
                -1,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut statement,
                ptr::null_mut(),
            )
        };
        match NonNull::new(statement) {
            Some(user_view) if code == ffi::SQLITE_OK => Ok(Self { db, user_view }),
            _ => close(db, "prepare"),
        }
    }

    /// Runs the query once.
    fn user_view(&self, user_id: &str, account_id: &str) -> Step {
        let statement = Statement(self.user_view);
        if statement.bind(1, user_id).is_none() || statement.bind(2, account_id).is_none() {
            return Step::Failed;
        }
        // SAFETY: the statement is prepared and its parameters bound to strings that outlive
        // the step (`Statement` resets it, and so clears them, when it drops).
        match unsafe { ffi::sqlite3_step(statement.0.as_ptr()) } {
            ffi::SQLITE_DONE => Step::Answered(None),
            ffi::SQLITE_ROW => statement
                .user_view()
                .map_or(Step::Unreadable, |user| Step::Answered(Some(user))),
            _ => Step::Failed,
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // SAFETY: both come from this connection and are used by no one else.
        unsafe {
            ffi::sqlite3_finalize(self.user_view.as_ptr());
            ffi::sqlite3_close(self.db.as_ptr());
        }
    }
}

/// A prepared statement in use; reset when dropped, which ends its read transaction and
/// releases its bound values.
struct Statement(NonNull<ffi::sqlite3_stmt>);

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: the statement is valid; reset and clear_bindings never fail on a valid one
        // (reset returns the last step's error, which was already handled).
        unsafe {
            ffi::sqlite3_reset(self.0.as_ptr());
            ffi::sqlite3_clear_bindings(self.0.as_ptr());
        }
    }
}

impl Statement {
    fn bind(&self, index: c_int, value: &str) -> Option<()> {
        let length = c_int::try_from(value.len()).ok()?;
        // SAFETY: SQLITE_STATIC: `value` outlives the step, and the binding is cleared before
        // this statement is used again (see `Drop`).
        let code = unsafe {
            ffi::sqlite3_bind_text(
                self.0.as_ptr(),
                index,
                value.as_ptr().cast(),
                length,
                ffi::SQLITE_STATIC(),
            )
        };
        (code == ffi::SQLITE_OK).then_some(())
    }

    /// The row the statement stands on, as `find_user_view` reads it.
    fn user_view(&self) -> Option<UserView> {
        let row = user::Model {
            id: self.text(0)?,
            account_id: self.text(1)?,
            email: self.text(2)?,
            display_name: self.text(3)?,
            license_type: enums::LicenseType::try_from_value(&self.text(4)?).ok()?,
            inbound_calling: self.boolean(5)?,
            outbound_calling: self.boolean(6)?,
            sms: self.boolean(7)?,
            create_time: self.time(8)?,
            update_time: self.time(9)?,
            sign_out_pending_oldest_sequence: self.nullable(10, Self::integer)?,
            sign_out_pending_oldest_time: self.nullable(11, Self::time)?,
            sign_out_pending_latest_sequence: self.nullable(12, Self::integer)?,
            sign_out_pending_latest_time: self.nullable(13, Self::time)?,
        };
        let phone_number = self.nullable(14, Self::text)?;
        Some(UserView::new(row, phone_number))
    }

    fn column_type(&self, column: c_int) -> c_int {
        // SAFETY: the statement stands on a row; out-of-range columns answer NULL.
        unsafe { ffi::sqlite3_column_type(self.0.as_ptr(), column) }
    }

    /// `Some(None)` for NULL, `Some(Some(value))` for a value `read` accepts.
    fn nullable<T>(
        &self,
        column: c_int,
        read: impl FnOnce(&Self, c_int) -> Option<T>,
    ) -> Option<Option<T>> {
        if self.column_type(column) == ffi::SQLITE_NULL {
            Some(None)
        } else {
            read(self, column).map(Some)
        }
    }

    fn text(&self, column: c_int) -> Option<String> {
        self.str(column).map(str::to_owned)
    }

    /// The column's text, borrowed until the statement moves (only `Reader::user_view` steps
    /// it, before any column is read).
    fn str(&self, column: c_int) -> Option<&str> {
        if self.column_type(column) != ffi::SQLITE_TEXT {
            return None;
        }
        // SAFETY: the column holds text: sqlite3_column_text gives its UTF-8 bytes, valid until
        // the next step or reset, and sqlite3_column_bytes (called after it, as SQLite
        // requires) their length.
        unsafe {
            let text = ffi::sqlite3_column_text(self.0.as_ptr(), column);
            let length =
                usize::try_from(ffi::sqlite3_column_bytes(self.0.as_ptr(), column)).ok()?;
            if text.is_null() {
                return Some("");
            }
            std::str::from_utf8(std::slice::from_raw_parts(text, length)).ok()
        }
    }

    fn integer(&self, column: c_int) -> Option<i64> {
        if self.column_type(column) != ffi::SQLITE_INTEGER {
            return None;
        }
        // SAFETY: the statement stands on a row and the column is an integer.
        Some(unsafe { ffi::sqlite3_column_int64(self.0.as_ptr(), column) })
    }

    /// As sqlx decodes a boolean: any integer other than zero is true.
    fn boolean(&self, column: c_int) -> Option<bool> {
        self.integer(column).map(|value| value != 0)
    }

    /// Times are stored as RFC 3339 text (what sqlx writes); other forms go to the pool.
    fn time(&self, column: c_int) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(self.str(column)?)
            .ok()
            .map(|time| time.with_timezone(&Utc))
    }
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
