// The inventory of phone numbers: ListPhoneNumbers with every filter of its request, paged; and
// the deletion queue, the same list limited to DELETE_IN_PROGRESS numbers (deleted, restorable
// until their deletion time), with Restore.

import {
  PhoneNumberProductType,
  PhoneNumberProductTypeSchema,
  PhoneNumberStatus,
  PhoneNumberStatusSchema,
  PhoneNumberType,
  PhoneNumberTypeSchema,
  type PhoneNumber,
} from "../gen/telephony/admin/v1/phone_number_service_pb";
import { numbers } from "../api/transport";
import { button, cell, el, enumName, enumSelect, field, form, formatTime, input, link } from "../dom";
import { href } from "../router";
import { canWrite, isOrganisationKey } from "../session";
import type { Page, PageContext } from "../shell";
import { pager } from "./pager";

export function inventoryPage(ctx: PageContext, deletionQueue: boolean): Page {
  const status = enumSelect(
    PhoneNumberStatusSchema,
    "inventory-filter-status",
    PhoneNumberStatus.UNSPECIFIED,
    "Any",
  );
  const product = enumSelect(
    PhoneNumberProductTypeSchema,
    "inventory-filter-product-type",
    PhoneNumberProductType.UNSPECIFIED,
    "Any",
  );
  const type = enumSelect(PhoneNumberTypeSchema, "inventory-filter-type", PhoneNumberType.UNSPECIFIED, "Any");
  const accountId = input("inventory-filter-account-id");
  const userId = input("inventory-filter-user-id");
  const prefix = input("inventory-filter-e164-prefix", { placeholder: "+1206" });
  const country = input("inventory-filter-country", { placeholder: "US", size: 4 });
  const locationId = input("inventory-filter-emergency-location-id");
  const manage = canWrite() && isOrganisationKey();

  const list = pager<PhoneNumber>(ctx, {
    test: deletionQueue ? "deletion-queue-list" : "inventory-list",
    headers: [
      "Number",
      "Country",
      "Type",
      "Product",
      "Status",
      "Calling name",
      "Held by",
      deletionQueue ? "Purged at" : "Order",
      "",
    ],
    empty: deletionQueue ? "The deletion queue is empty." : "No numbers match.",
    fetch: async (pageToken, pageSize, signal) => {
      const res = await numbers.listPhoneNumbers(
        {
          status: deletionQueue
            ? PhoneNumberStatus.DELETE_IN_PROGRESS
            : (Number(status.value) as PhoneNumberStatus),
          productType: Number(product.value) as PhoneNumberProductType,
          type: Number(type.value) as PhoneNumberType,
          accountId: accountId.value.trim(),
          userId: userId.value.trim(),
          e164Prefix: prefix.value.replace(/[\s().-]/g, ""),
          country: country.value.trim(),
          emergencyLocationId: locationId.value.trim(),
          pageToken,
          pageSize,
        },
        { signal },
      );
      return { items: res.phoneNumbers, next: res.nextPageToken };
    },
    row: (n) => {
      const holder = n.association;
      const actions: HTMLElement[] = [
        link("Details", href({ page: "number", e164: n.e164PhoneNumber }), "number-link"),
      ];
      if (manage && n.status === PhoneNumberStatus.UNASSIGNED) {
        actions.push(
          button("Delete", "number-delete", () =>
            act(`Moved ${n.e164PhoneNumber} to the deletion queue.`, () =>
              numbers.deletePhoneNumber({ phoneNumberId: n.phoneNumberId }, { signal: ctx.signal }),
            ),
          ),
        );
      }
      if (manage && n.status === PhoneNumberStatus.DELETE_IN_PROGRESS) {
        actions.push(
          button("Restore", "number-restore", () =>
            act(`Restored ${n.e164PhoneNumber}.`, () =>
              numbers.restorePhoneNumber({ phoneNumberId: n.phoneNumberId }, { signal: ctx.signal }),
            ),
          ),
        );
      }
      return el(
        "tr",
        {
          "data-test": "number-row",
          "data-e164": n.e164PhoneNumber,
          "data-status": enumName(PhoneNumberStatusSchema, n.status),
        },
        cell(el("code", {}, n.e164PhoneNumber)),
        cell(n.country),
        cell(enumName(PhoneNumberTypeSchema, n.type)),
        cell(enumName(PhoneNumberProductTypeSchema, n.productType)),
        cell(el("span", { "data-test": "number-status" }, enumName(PhoneNumberStatusSchema, n.status))),
        cell(n.callingName),
        cell(
          holder
            ? link(
                holder.userId,
                href({ page: "user", accountId: holder.accountId, userId: holder.userId }),
                "number-holder-link",
              )
            : "",
        ),
        cell(deletionQueue ? formatTime(n.deletionTime) : n.orderId),
        cell(el("span", { class: "actions" }, ...actions)),
      );
    },
  });

  function act(done: string, call: () => Promise<unknown>): void {
    void ctx.act(async () => {
      await call();
      ctx.notify(done);
      await list.refresh();
    });
  }

  const filters = deletionQueue
    ? el("p", { class: "hint" }, "Deleted numbers stay here, restorable, until they are purged.")
    : form(
        "inventory-filter",
        () => void list.reset(),
        field("Status", status),
        field("Product", product),
        field("Type", type),
        field("Number starts with", prefix),
        field("Country", country),
        field("Account id", accountId),
        field("User id", userId),
        field("Emergency location id", locationId),
        el("button", { type: "submit", "data-test": "inventory-filter-apply" }, "Apply"),
      );

  const element = el(
    "section",
    { "data-test": deletionQueue ? "deletion-queue-page" : "inventory-page" },
    el("h1", {}, deletionQueue ? "Deletion queue" : "Inventory"),
    filters,
    list.element,
  );
  void list.refresh();
  return { element, refresh: async () => void (await list.refresh()) };
}
