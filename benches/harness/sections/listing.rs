//! ListPhoneNumbers first-page latency (page of 50, one call in flight) with 1,000,000 numbers in
//! the inventory against 10,000, for every combination of its filters: status, product type,
//! account and user. The rows are bulk-inserted with plain SQL, copying the columns of template
//! rows made through the API, so that they look exactly like the service's own.
//!
//! The inventory, per 100 numbers: 1 SIP_MEDIA_APPLICATION_DIAL_IN and 9 VOICE_CONNECTOR
//! (unassigned), 5 assigned to users of a background account, 5 in the deletion queue, the rest
//! unassigned BUSINESS_CALLING. Besides, a listed account holds 200 users with a number each, at
//! both sizes. Filters take values that match: with an account or user, status ASSIGNED and
//! product BUSINESS_CALLING; without, status UNASSIGNED and the rare product
//! SIP_MEDIA_APPLICATION_DIAL_IN (1 %).

use std::time::{Duration, Instant};

use crate::Run;
use crate::api::{
    self, Clients, DeletePhoneNumberRequest, ListPhoneNumbersRequest, PhoneNumberProductType,
    PhoneNumberStatus,
};
use crate::database::{Backend, Sql, seconds};
use crate::load::{Budget, one_in_flight};
use crate::report::{Figure, Row, Target};
use crate::server::InProcess;

const SECTION: &str = "listing";
const SMALL: u64 = 10_000;
const LARGE: u64 = 1_000_000;
/// `--short`: a smaller large inventory.
const LARGE_SHORT: u64 = 100_000;
const LISTED_USERS: u64 = 200;
const CHUNK: u64 = 100_000;

const ASSIGNED_TEMPLATE: &str = "+12065550100";
const UNASSIGNED_TEMPLATE: &str = "+12065550101";
const DELETED_TEMPLATE: &str = "+12065550102";
const LISTED_USER_PREFIX: &str = "a0000000-0000-4000-8000-";
const BACKGROUND_USER_PREFIX: &str = "b0000000-0000-4000-8000-";

/// The ids the fixture SQL refers to.
struct Fixture {
    backend: Backend,
    template_user: String,
    listed_account: String,
    background_account: String,
}

pub async fn run(run: &Run) -> anyhow::Result<Vec<Row>> {
    let large = if run.short { LARGE_SHORT } else { LARGE };
    let database = run.target.create().await?;
    let service = InProcess::start(&database, |_| {}).await?;
    let clients = &service.clients;
    let fixture = templates(clients, database.backend()).await?;
    let sql = database.connect().await?;
    fixture.listed_users(&sql).await?;

    let mut small = Vec::new();
    let mut large_p50 = Vec::new();
    let budget = Budget {
        one_in_flight: Duration::from_millis(if run.short { 150 } else { 300 }),
        ..run.budget
    };
    for (from, to, results) in [(0, SMALL, &mut small), (SMALL, large, &mut large_p50)] {
        let began = Instant::now();
        fixture.grow(&sql, from, to).await?;
        println!(
            "   inventory grown to {to} numbers in {:.1} s",
            seconds(began)
        );
        for filters in 0..16u8 {
            let request = fixture.request(filters);
            let first = clients
                .numbers()
                .list_phone_numbers(request.clone())
                .await?;
            anyhow::ensure!(
                !first.into_inner().phone_numbers.is_empty(),
                "{} matches nothing",
                label(filters)
            );
            let measured = one_in_flight(budget, 5, 200, |_| {
                let (mut numbers, request) = (clients.numbers(), request.clone());
                async move {
                    numbers.list_phone_numbers(request).await?;
                    Ok(())
                }
            })
            .await?;
            results.push(measured.percentile(50.0));
        }
    }
    sql.close().await;
    service.stop().await?;

    Ok((0..16u8)
        .map(|filters| {
            Row::new(
                SECTION,
                format!("{}: p50 at {large} vs {SMALL} numbers", label(filters)),
                Figure::Latency(large_p50[filters as usize]),
            )
            .against(Figure::Latency(small[filters as usize]))
            .target(Target::AtMost(1.5))
        })
        .collect())
}

/// Bits of `filters`: 1 status, 2 product type, 4 account, 8 user.
fn label(filters: u8) -> String {
    let names: Vec<&str> = ["status", "product", "account", "user"]
        .into_iter()
        .enumerate()
        .filter(|(bit, _)| filters & (1 << bit) != 0)
        .map(|(_, name)| name)
        .collect();
    if names.is_empty() {
        "no filter".into()
    } else {
        format!("by {}", names.join("+"))
    }
}

/// Template rows through the API: a user with an assigned number, an unassigned number and a
/// number in the deletion queue; and the two accounts.
async fn templates(clients: &Clients, backend: Backend) -> anyhow::Result<Fixture> {
    let (listed_account, template_user) =
        api::user_with_number(clients, "template@example.com", ASSIGNED_TEMPLATE, None).await?;
    let background_account = api::create_account(clients, "Background").await?;
    api::order_numbers(
        clients,
        &[UNASSIGNED_TEMPLATE.to_owned(), DELETED_TEMPLATE.to_owned()],
    )
    .await?;
    clients
        .numbers()
        .delete_phone_number(DeletePhoneNumberRequest {
            phone_number_id: DELETED_TEMPLATE.into(),
        })
        .await?;
    Ok(Fixture {
        backend,
        template_user,
        listed_account,
        background_account,
    })
}

impl Fixture {
    fn request(&self, filters: u8) -> ListPhoneNumbersRequest {
        let owned = filters & 0b1100 != 0;
        let mut request = ListPhoneNumbersRequest {
            page_size: 50,
            ..Default::default()
        };
        if filters & 1 != 0 {
            request.status = if owned {
                PhoneNumberStatus::Assigned
            } else {
                PhoneNumberStatus::Unassigned
            } as i32;
        }
        if filters & 2 != 0 {
            request.product_type = if owned {
                PhoneNumberProductType::BusinessCalling
            } else {
                PhoneNumberProductType::SipMediaApplicationDialIn
            } as i32;
        }
        if filters & 4 != 0 {
            request.account_id = self.listed_account.clone();
        }
        if filters & 8 != 0 {
            request.user_id = format!("{LISTED_USER_PREFIX}{:012}", 0);
        }
        request
    }

    /// `WITH` prefix, row source and zero-padded `i` for a series of integers `i` in
    /// `from..to`, in this database's dialect.
    fn series(&self, from: u64, to: u64) -> (String, String, &'static str) {
        match self.backend {
            Backend::Sqlite => (
                format!(
                    "WITH RECURSIVE s(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM s WHERE i + 1 < {to}) "
                ),
                "s".into(),
                "printf('%012d', i)",
            ),
            Backend::Postgres => (
                String::new(),
                format!("generate_series({from}, {} - 1) AS s(i)", to),
                "lpad(i::text, 12, '0')",
            ),
        }
    }

    /// Users copied from the template user, in `account`, for the `i` of `from..to` that
    /// satisfy `condition`.
    async fn users(
        &self,
        sql: &Sql,
        (from, to): (u64, u64),
        account: &str,
        prefix: &str,
        condition: &str,
    ) -> anyhow::Result<()> {
        let (with, source, pad) = self.series(from, to);
        sql.execute(format!(
            "{with}INSERT INTO users (id, account_id, email, display_name, license_type, \
             inbound_calling, outbound_calling, sms, create_time, update_time) \
             SELECT '{prefix}' || {pad}, '{account}', 'u' || i || '@bench.example.com', \
             t.display_name, t.license_type, t.inbound_calling, t.outbound_calling, t.sms, \
             t.create_time, t.update_time \
             FROM {source}, users t WHERE t.id = '{template}' AND {condition}",
            template = self.template_user,
        ))
        .await?;
        Ok(())
    }

    /// The listed account's users, each with an assigned number (+1425…).
    async fn listed_users(&self, sql: &Sql) -> anyhow::Result<()> {
        let range = (0, LISTED_USERS);
        self.users(
            sql,
            range,
            &self.listed_account,
            LISTED_USER_PREFIX,
            "1 = 1",
        )
        .await?;
        let (with, source, pad) = self.series(range.0, range.1);
        sql.execute(format!(
            "{with}INSERT INTO phone_numbers (e164, country, number_type, product_type, status, \
             account_id, user_id, associate_time, calling_name, order_id, create_time, \
             update_time, deletion_time) \
             SELECT '+1425' || (2000000 + i), a.country, a.number_type, a.product_type, a.status, \
             a.account_id, '{LISTED_USER_PREFIX}' || {pad}, a.associate_time, a.calling_name, \
             a.order_id, a.create_time, a.update_time, NULL \
             FROM {source}, phone_numbers a WHERE a.e164 = '{ASSIGNED_TEMPLATE}'"
        ))
        .await?;
        Ok(())
    }

    /// Adds inventory numbers `from..to` (+1206…) and the background users that hold some.
    async fn grow(&self, sql: &Sql, from: u64, to: u64) -> anyhow::Result<()> {
        const ASSIGNED: &str = "i % 100 BETWEEN 10 AND 14";
        const DELETED: &str = "i % 100 BETWEEN 15 AND 19";
        let mut start = from;
        while start < to {
            let end = (start + CHUNK).min(to);
            self.users(
                sql,
                (start, end),
                &self.background_account,
                BACKGROUND_USER_PREFIX,
                ASSIGNED,
            )
            .await?;
            let (with, source, pad) = self.series(start, end);
            sql.execute(format!(
                "{with}INSERT INTO phone_numbers (e164, country, number_type, product_type, \
                 status, account_id, user_id, associate_time, calling_name, order_id, \
                 create_time, update_time, deletion_time) \
                 SELECT '+1206' || (2000000 + i), t.country, t.number_type, \
                 CASE WHEN i % 100 = 0 THEN 'SIP_MEDIA_APPLICATION_DIAL_IN' \
                      WHEN i % 100 < 10 THEN 'VOICE_CONNECTOR' ELSE 'BUSINESS_CALLING' END, \
                 CASE WHEN {ASSIGNED} THEN 'ASSIGNED' WHEN {DELETED} THEN 'DELETE_IN_PROGRESS' \
                      ELSE 'UNASSIGNED' END, \
                 CASE WHEN {ASSIGNED} THEN '{account}' END, \
                 CASE WHEN {ASSIGNED} THEN '{BACKGROUND_USER_PREFIX}' || {pad} END, \
                 CASE WHEN {ASSIGNED} THEN a.associate_time END, \
                 t.calling_name, t.order_id, t.create_time, t.update_time, \
                 CASE WHEN {DELETED} THEN d.deletion_time END \
                 FROM {source}, phone_numbers t, phone_numbers a, phone_numbers d \
                 WHERE t.e164 = '{UNASSIGNED_TEMPLATE}' AND a.e164 = '{ASSIGNED_TEMPLATE}' \
                 AND d.e164 = '{DELETED_TEMPLATE}'",
                account = self.background_account,
            ))
            .await?;
            start = end;
        }
        // PostgreSQL's autovacuum analyses a table this size soon after the load; do it now.
        // SQLite has no such statistics unless the application gathers them, and this one
        // does not.
        if self.backend == Backend::Postgres {
            sql.execute("ANALYZE").await?;
        }
        Ok(())
    }
}
