//! Orders that acquire numbers for the inventory: an order's numbers are parsed and checked
//! before its transaction opens, then every one not in the inventory yet is acquired, and the
//! order is kept with each number's outcome. Read newest first, in keyset pages on the order id
//! (a UUIDv7, so ids sort by creation time).

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::domain::ids::OrderId;
use crate::domain::phone_number::{
    E164, NumberStatus, OrderStatus, ProductType, check_product_type,
};
use crate::domain::{DomainError, account::new_id};
use crate::error::{Error, Result};
use crate::store::db::entities::enums::NumberStatus as Stored;
use crate::store::db::entities::{phone_number, phone_number_order};
use crate::store::db::page::{Page, PageRequest};
use crate::store::db::views::{OrderItem, OrderRecord};
use crate::store::engine::Engine;
use crate::store::engine::mutation::{Mutation, TxnFuture};

/// Number orders: the store's surface for them.
pub struct Orders<'a> {
    engine: &'a Engine,
}

impl<'a> Orders<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Self { engine }
    }

    /// Acquires every number that is valid, suits the product type and is not in the inventory
    /// yet. Each failure is recorded with its reason; the others still succeed.
    pub async fn create(
        &self,
        product_type: ProductType,
        requested: &[String],
    ) -> Result<OrderRecord> {
        self.engine
            .write(CreatePhoneNumberOrder::parse(product_type, requested))
            .await
    }

    pub async fn get(&self, order_id: &OrderId) -> Result<OrderRecord> {
        let order = phone_number_order::Entity::find_by_id(order_id.as_str())
            .one(self.engine.reader())
            .await?
            .ok_or_else(|| DomainError::NotFound {
                resource: "phone number order",
                name: order_id.to_string(),
            })?;
        let items = serde_json::from_str(&order.items)
            .map_err(|e| Error::Internal(format!("order {order_id} items unreadable: {e}")))?;
        Ok(OrderRecord::new(order, items))
    }

    /// Every order, newest first.
    pub async fn list(&self, page: &PageRequest) -> Result<Page<OrderRecord>> {
        let mut query =
            phone_number_order::Entity::find().order_by_desc(phone_number_order::Column::Id);
        if let Some(after) = &page.after {
            query = query.filter(phone_number_order::Column::Id.lt(after.as_str()));
        }
        let rows = query
            .limit(page.fetch_limit())
            .all(self.engine.reader())
            .await?;
        let page = page.finish(rows, |order| order.id.clone());
        let items = page
            .items
            .into_iter()
            .map(|order| {
                let items = serde_json::from_str(&order.items).map_err(|e| {
                    Error::Internal(format!("order {} items unreadable: {e}", order.id))
                })?;
                Ok(OrderRecord::new(order, items))
            })
            .collect::<Result<_>>()?;
        Ok(Page {
            items,
            next_page_token: page.next_page_token,
        })
    }
}

fn order_status(items: &[OrderItem]) -> OrderStatus {
    OrderStatus::of(items.iter().filter(|i| i.acquired).count(), items.len())
}

/// An order whose numbers were parsed and checked: each is a number to acquire, or an item that
/// already failed.
struct CreatePhoneNumberOrder {
    pub product_type: ProductType,
    pub candidates: Vec<Result<E164, OrderItem>>,
}

impl CreatePhoneNumberOrder {
    /// Parses and checks every requested number, without touching the database.
    fn parse(product_type: ProductType, requested: &[String]) -> Self {
        let mut seen = std::collections::HashSet::new();
        let candidates = requested
            .iter()
            .map(|raw| {
                let parsed = match E164::parse("e164_phone_numbers", raw) {
                    Ok(parsed) => parsed,
                    // Echo what was sent, but not a megabyte of it.
                    Err(e) => {
                        return Err(failed(
                            crate::domain::truncate(raw.trim(), 64),
                            reason_of(&e),
                        ));
                    }
                };
                let e164 = parsed.to_string();
                if !seen.insert(e164.clone()) {
                    return Err(failed(
                        e164,
                        "the number appears more than once in this order".into(),
                    ));
                }
                check_product_type(&parsed, product_type)
                    .map_err(|e| failed(e164, reason_of(&e)))?;
                Ok(parsed)
            })
            .collect();
        Self {
            product_type,
            candidates,
        }
    }
}

impl Mutation for CreatePhoneNumberOrder {
    type Output = OrderRecord;
    const APPENDS_CHANGES: bool = false;

    fn run<'a>(&'a self, txn: &'a DatabaseTransaction) -> TxnFuture<'a, OrderRecord> {
        Box::pin(create_phone_number_order(txn, self))
    }
}

/// Acquires every candidate that is not in the inventory yet. Each failure is recorded with its
/// reason; the others still succeed.
///
/// Numbers are written in E.164 order, whatever the request's order, so that two orders that
/// overlap take their locks in the same order and cannot deadlock. Only what the order changes
/// is locked: a number already in the inventory is left alone (the insert that conflicts with
/// it does not lock it), so assignments of it go on while the order runs.
async fn create_phone_number_order(
    txn: &DatabaseTransaction,
    cmd: &CreatePhoneNumberOrder,
) -> Result<OrderRecord> {
    let now = crate::store::db::now();
    let order_id = new_id();
    let mut acquiring: Vec<&E164> = cmd
        .candidates
        .iter()
        .filter_map(|c| c.as_ref().ok())
        .collect();
    acquiring.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut acquired = std::collections::HashSet::with_capacity(acquiring.len());
    for parsed in acquiring {
        let e164 = parsed.as_str();
        // A number whose deletion time has passed is gone, even before the purge runs. The
        // delete touches (and locks) that row only.
        phone_number::Entity::delete_many()
            .filter(phone_number::Column::E164.eq(e164))
            .filter(phone_number::Column::Status.eq(Stored::from(NumberStatus::DeleteInProgress)))
            .filter(phone_number::Column::DeletionTime.lte(now))
            .exec(txn)
            .await?;
        let (country, number_type) = parsed.classify();
        let row = phone_number::ActiveModel {
            e164: Set(e164.to_owned()),
            country: Set(country),
            number_type: Set(number_type.into()),
            product_type: Set(cmd.product_type.into()),
            status: Set(NumberStatus::Unassigned.into()),
            account_id: Set(None),
            user_id: Set(None),
            associate_time: Set(None),
            calling_name: Set(String::new()),
            order_id: Set(order_id.clone()),
            create_time: Set(now),
            update_time: Set(now),
            deletion_time: Set(None),
        };
        let inserted = phone_number::Entity::insert(row)
            .on_conflict_do_nothing_on([phone_number::Column::E164])
            .exec_without_returning(txn)
            .await?;
        if matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
            acquired.insert(e164);
        }
    }
    // The items in the request's order.
    let items: Vec<OrderItem> = cmd
        .candidates
        .iter()
        .map(|candidate| match candidate {
            Err(item) => item.clone(),
            Ok(parsed) if acquired.contains(parsed.as_str()) => OrderItem {
                e164: parsed.to_string(),
                acquired: true,
                reason: String::new(),
            },
            Ok(parsed) => failed(
                parsed.to_string(),
                "the number is already in the inventory".into(),
            ),
        })
        .collect();
    let order = phone_number_order::ActiveModel {
        id: Set(order_id),
        product_type: Set(cmd.product_type.into()),
        status: Set(order_status(&items).into()),
        items: Set(serde_json::to_string(&items)
            .map_err(|e| Error::Internal(format!("order items not storable: {e}")))?),
        create_time: Set(now),
    }
    .insert(txn)
    .await?;
    Ok(OrderRecord::new(order, items))
}

fn failed(e164: String, reason: String) -> OrderItem {
    OrderItem {
        e164,
        acquired: false,
        reason,
    }
}

/// The human part of a validation error, without the field name.
fn reason_of(err: &DomainError) -> String {
    match err {
        DomainError::InvalidArgument(violations) => violations
            .iter()
            .map(|v| v.description.clone())
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}
