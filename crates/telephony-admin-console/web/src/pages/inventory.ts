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
import { ChangeKind } from "../gen/telephony/admin/v1/change_service_pb";
import { numbers } from "../api/transport";
import { button, cell, el, enumName, enumSelect, field, form, formatTime, input, link } from "../dom";
import { href } from "../router";
import { canWrite, isOrganisationKey, scopedAccount } from "../session";
import type { Page, PageContext } from "../shell";
import { pager } from "./pager";

/** The filters of ListPhoneNumbersRequest, as applied. */
interface NumberFilters {
  status: PhoneNumberStatus;
  productType: PhoneNumberProductType;
  type: PhoneNumberType;
  accountId: string;
  userId: string;
  e164Prefix: string;
  country: string;
  emergencyLocationId: string;
}

/** The kinds of change that move a number in or out of a list, or change its row. */
const NUMBER_CHANGES = new Set<ChangeKind>([
  ChangeKind.PHONE_NUMBER_ASSIGNED,
  ChangeKind.PHONE_NUMBER_UNASSIGNED,
  ChangeKind.USER_DELETED,
]);

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
  // An account-scoped key may list its own account's numbers only (or unassigned ones, which
  // the number picker of a user's page offers): its account filter is its account, locked.
  const scoped = scopedAccount();
  const accountId = input("inventory-filter-account-id", { value: scoped, readonly: scoped !== "" });
  const userId = input("inventory-filter-user-id");
  const prefix = input("inventory-filter-e164-prefix", { placeholder: "+1206" });
  const country = input("inventory-filter-country", { placeholder: "US", size: 4 });
  const locationId = input("inventory-filter-emergency-location-id");
  const manage = canWrite() && isOrganisationKey();

  const list = pager<PhoneNumber, NumberFilters>(ctx, {
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
    filters: () => ({
      status: deletionQueue ? PhoneNumberStatus.DELETE_IN_PROGRESS : (Number(status.value) as PhoneNumberStatus),
      productType: Number(product.value) as PhoneNumberProductType,
      type: Number(type.value) as PhoneNumberType,
      // The deletion queue is the organisation's (deleted numbers belong to no account).
      accountId: deletionQueue ? "" : scoped !== "" ? scoped : accountId.value.trim(),
      userId: userId.value.trim(),
      e164Prefix: prefix.value.replace(/[\s().-]/g, ""),
      country: country.value.trim(),
      emergencyLocationId: locationId.value.trim(),
    }),
    fetch: async (filters, pageToken, pageSize, signal) => {
      const res = await numbers.listPhoneNumbers({ ...filters, pageToken, pageSize }, { signal });
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
        field(
          "Account id",
          accountId,
          scoped !== "" ? "Your key's account: an account key lists its own account's numbers." : undefined,
        ),
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
  return {
    element,
    refresh: async () => void (await list.refresh()),
    // No change event moves a number into or out of the deletion queue. In the inventory, an
    // assignment, an unassignment or a deleted user changes a number's row; a new location
    // only matters when the list is filtered by one; another account's change only when the
    // list is not limited to one account.
    concerns: (event) => {
      if (deletionQueue) return false;
      const f = list.applied();
      const kind =
        NUMBER_CHANGES.has(event.kind) ||
        (event.kind === ChangeKind.EMERGENCY_LOCATION_UPDATED && f.emergencyLocationId !== "");
      return kind && (f.accountId === "" || f.accountId === event.accountId);
    },
  };
}
