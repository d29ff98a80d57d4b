// One phone number: its details, its calling name (UpdatePhoneNumber, mask "calling_name"),
// deleting or restoring it, and its history (ListPhoneNumberAssignments: who held it when).

import {
  PhoneNumberProductTypeSchema,
  PhoneNumberStatus,
  PhoneNumberStatusSchema,
  PhoneNumberTypeSchema,
  type PhoneNumber,
  type PhoneNumberAssignment,
} from "../gen/telephony/admin/v1/phone_number_service_pb";
import { EmergencyLocationSourceSchema } from "../gen/telephony/admin/v1/common_pb";
import { numbers } from "../api/transport";
import { button, cell, el, enumName, field, form, formatTime, input, link, replace, term } from "../dom";
import { href } from "../router";
import { canWrite, isOrganisationKey } from "../session";
import type { Page, PageContext } from "../shell";
import { pager } from "./pager";

export function numberPage(ctx: PageContext, e164: string): Page {
  const opts = { signal: ctx.signal };
  const manage = canWrite() && isOrganisationKey();
  const details = el("dl", { class: "details", "data-test": "number-details" });
  const callingName = input("calling-name-input", { placeholder: "2 to 15 letters, digits, spaces" });
  let shownId = "";
  let phoneNumberId = e164;
  /** The number's E.164 form as the server answered it; "" until then. */
  let readE164 = "";

  const remove = button(
    "Delete",
    "number-delete",
    () => change("Moved to the deletion queue.", () => numbers.deletePhoneNumber({ phoneNumberId }, opts)),
    { hidden: true, class: "danger" },
  );
  const restore = button(
    "Restore",
    "number-restore",
    () => change("Restored.", () => numbers.restorePhoneNumber({ phoneNumberId }, opts)),
    { hidden: true },
  );

  function change(done: string, call: () => Promise<PhoneNumber>): void {
    void ctx.act(async () => {
      show(await call());
      ctx.notify(done);
    });
  }

  function show(n: PhoneNumber): void {
    phoneNumberId = n.phoneNumberId;
    readE164 = n.e164PhoneNumber;
    const holder = n.association;
    const loc = n.emergencyLocation;
    replace(
      details,
      ...term("Status", enumName(PhoneNumberStatusSchema, n.status), "number-status"),
      ...term("Country", n.country),
      ...term("Type", enumName(PhoneNumberTypeSchema, n.type)),
      ...term("Product", enumName(PhoneNumberProductTypeSchema, n.productType)),
      ...term("Calling name", n.callingName, "number-calling-name"),
      el("dt", {}, "Held by"),
      el(
        "dd",
        { "data-test": "number-holder" },
        holder
          ? link(
              `${holder.userId} since ${formatTime(holder.associateTime)}`,
              href({ page: "user", accountId: holder.accountId, userId: holder.userId }),
              "number-holder-link",
            )
          : "nobody",
      ),
      ...term(
        "Emergency location",
        loc ? `${loc.locationId} (${enumName(EmergencyLocationSourceSchema, loc.source)})` : "none",
      ),
      ...term("Order", n.orderId),
      ...term("Created", formatTime(n.createTime)),
      ...(n.deletionTime ? term("Purged at", formatTime(n.deletionTime), "number-deletion-time") : []),
    );
    remove.hidden = n.status !== PhoneNumberStatus.UNASSIGNED;
    restore.hidden = n.status !== PhoneNumberStatus.DELETE_IN_PROGRESS;
    // Filled once, and after a save: a refresh does not overwrite what is being typed.
    if (shownId !== n.phoneNumberId) {
      shownId = n.phoneNumberId;
      callingName.value = n.callingName;
    }
  }

  const history = pager<PhoneNumberAssignment>(ctx, {
    test: "assignments-list",
    headers: ["User", "Account", "Assigned", "Unassigned"],
    empty: "Never assigned.",
    fetch: async (_filters, pageToken, pageSize, signal) => {
      const res = await numbers.listPhoneNumberAssignments(
        { phoneNumberId: e164, pageToken, pageSize },
        { signal },
      );
      return { items: res.phoneNumberAssignments, next: res.nextPageToken };
    },
    row: (a) =>
      el(
        "tr",
        { "data-test": "assignment-row", "data-user-id": a.userId },
        cell(
          link(
            a.userId,
            href({ page: "user", accountId: a.accountId, userId: a.userId }),
            "assignment-user-link",
          ),
        ),
        cell(a.accountId),
        cell(formatTime(a.assignTime)),
        cell(a.unassignTime ? formatTime(a.unassignTime) : "holds it"),
      ),
  });

  const nameForm = form(
    "calling-name-form",
    () =>
      void ctx.act(async () => {
        const updated = await numbers.updatePhoneNumber(
          { phoneNumberId, callingName: callingName.value.trim(), updateMask: { paths: ["calling_name"] } },
          opts,
        );
        shownId = "";
        show(updated);
        ctx.notify("Calling name saved.");
      }),
    field("Calling name", callingName, "Empty, or 2 to 15 letters, digits and spaces."),
    el("button", { type: "submit", "data-test": "calling-name-submit" }, "Save"),
  );

  async function reload(): Promise<void> {
    show(await numbers.getPhoneNumber({ phoneNumberId: e164 }, opts));
  }

  const element = el(
    "section",
    { "data-test": "number-page", "data-e164": e164 },
    el("p", { class: "crumbs" }, link("Inventory", href({ page: "inventory" }), "crumb-inventory")),
    el("h1", {}, el("code", { "data-test": "number-e164" }, e164)),
    details,
    manage ? el("p", { class: "actions" }, remove, restore) : undefined,
    manage ? el("section", { class: "panel" }, el("h2", {}, "Calling name"), nameForm) : undefined,
    el("h2", {}, "History"),
    history.element,
  );
  void ctx.load(reload);
  void history.refresh();
  return {
    element,
    refresh: async () => {
      await Promise.all([ctx.load(reload), history.refresh()]);
    },
    // Events name the number they assign, unassign or leave with the user; until the number is
    // read, the URL's spelling of it may differ from the events' E.164 form.
    concerns: (event) => readE164 === "" || event.e164PhoneNumber === readE164,
  };
}
