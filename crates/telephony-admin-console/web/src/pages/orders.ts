// Phone number orders: placing one (CreatePhoneNumberOrder; each number is acquired or fails on
// its own), the list of orders (newest first), and one order's outcome (GetPhoneNumberOrder).

import {
  OrderedPhoneNumberStatusSchema,
  PhoneNumberOrderStatusSchema,
  PhoneNumberProductType,
  PhoneNumberProductTypeSchema,
  type PhoneNumberOrder,
} from "../gen/telephony/admin/v1/phone_number_service_pb";
import { numbers } from "../api/transport";
import { cell, el, enumName, enumSelect, field, form, formatTime, link, replace, table, term } from "../dom";
import { go, href } from "../router";
import { canWrite } from "../session";
import type { Page, PageContext } from "../shell";
import { pager } from "./pager";

export function ordersPage(ctx: PageContext): Page {
  const list = pager<PhoneNumberOrder>(ctx, {
    test: "orders-list",
    headers: ["Order", "Product", "Status", "Numbers", "Placed"],
    empty: "No orders yet.",
    fetch: async (_filters, pageToken, pageSize, signal) => {
      const res = await numbers.listPhoneNumberOrders({ pageToken, pageSize }, { signal });
      return { items: res.phoneNumberOrders, next: res.nextPageToken };
    },
    row: (o) =>
      el(
        "tr",
        { "data-test": "order-row", "data-order-id": o.orderId },
        cell(link(o.orderId, href({ page: "order", orderId: o.orderId }), "order-link")),
        cell(enumName(PhoneNumberProductTypeSchema, o.productType)),
        cell(enumName(PhoneNumberOrderStatusSchema, o.status)),
        cell(String(o.orderedPhoneNumbers.length)),
        cell(formatTime(o.createTime)),
      ),
  });
  const element = el(
    "section",
    { "data-test": "orders-page" },
    el("h1", {}, "Orders"),
    canWrite() ? orderForm(ctx) : undefined,
    list.element,
  );
  void list.refresh();
  // Change events are about users: none changes an order.
  return { element, refresh: async () => void (await list.refresh()), concerns: () => false };
}

function orderForm(ctx: PageContext): HTMLElement {
  const product = enumSelect(
    PhoneNumberProductTypeSchema,
    "order-product-type",
    PhoneNumberProductType.BUSINESS_CALLING,
  );
  const list = el("textarea", {
    "data-test": "order-numbers",
    rows: 4,
    cols: 30,
    placeholder: "+1 206 555 0100\n+1 206 555 0101",
  });
  return el(
    "section",
    { class: "panel" },
    el("h2", {}, "Order numbers"),
    form(
      "order-form",
      () =>
        void ctx.act(async () => {
          const e164PhoneNumbers = list.value
            .split(/[\n,;]+/)
            .map((n) => n.trim())
            .filter(Boolean);
          const order = await numbers.createPhoneNumberOrder(
            { productType: Number(product.value) as PhoneNumberProductType, e164PhoneNumbers },
            { signal: ctx.signal },
          );
          list.value = "";
          go({ page: "order", orderId: order.orderId });
        }),
      field("Product", product),
      field("Numbers", list, "One per line (or separated by commas), in any common notation; 1 to 1000."),
      el("button", { type: "submit", "data-test": "order-submit" }, "Place order"),
    ),
  );
}

export function orderPage(ctx: PageContext, orderId: string): Page {
  const details = el("dl", { class: "details", "data-test": "order-details" });
  const { table: numbersTable, body } = table("order-numbers-list", ["Number", "Outcome", "Reason"]);
  async function reload(): Promise<void> {
    const o = await numbers.getPhoneNumberOrder({ orderId }, { signal: ctx.signal });
    replace(
      details,
      ...term("Status", enumName(PhoneNumberOrderStatusSchema, o.status), "order-status"),
      ...term("Product", enumName(PhoneNumberProductTypeSchema, o.productType)),
      ...term("Placed", formatTime(o.createTime)),
    );
    replace(
      body,
      ...o.orderedPhoneNumbers.map((n) =>
        el(
          "tr",
          { "data-test": "ordered-number-row", "data-e164": n.e164PhoneNumber },
          cell(el("code", {}, n.e164PhoneNumber)),
          cell(enumName(OrderedPhoneNumberStatusSchema, n.status)),
          cell(n.reason),
        ),
      ),
    );
  }
  const element = el(
    "section",
    { "data-test": "order-page", "data-order-id": orderId },
    el("p", { class: "crumbs" }, link("Orders", href({ page: "orders" }), "crumb-orders")),
    el("h1", {}, `Order ${orderId}`),
    details,
    numbersTable,
  );
  void ctx.load(reload);
  return { element, refresh: async () => void (await ctx.load(reload)), concerns: () => false };
}
