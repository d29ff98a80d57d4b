//! Reading the orders that acquired numbers: newest first, in keyset pages on the order id
//! (a UUIDv7, so ids sort by creation time).

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::Store;
use super::entities::phone_number_order;
use super::page::{Page, PageRequest};
use super::views::OrderRecord;
use crate::error::{Error, Result};

impl Store {
    /// Every order, newest first.
    pub async fn list_phone_number_orders(&self, page: &PageRequest) -> Result<Page<OrderRecord>> {
        let mut query =
            phone_number_order::Entity::find().order_by_desc(phone_number_order::Column::Id);
        if let Some(after) = &page.after {
            query = query.filter(phone_number_order::Column::Id.lt(after.as_str()));
        }
        let rows = query
            .limit(page.fetch_limit())
            .all(self.connection())
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
