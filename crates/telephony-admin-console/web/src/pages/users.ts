// Users of an account: the list with its filters (search by email or name, pending sign-out,
// missing emergency location), paged, and creating a user (admin keys).

import { LicenseType, LicenseTypeSchema, type User } from "../gen/telephony/admin/v1/common_pb";
import { accounts, users } from "../api/transport";
import { cell, checkbox, el, enumName, enumSelect, field, form, input, link } from "../dom";
import { href } from "../router";
import { canWrite, readsOnlyUsers } from "../session";
import type { Page, PageContext } from "../shell";
import { pager } from "./pager";

/** The filters of ListUsersRequest the page offers, as applied. */
interface UserFilters {
  search: string;
  signOutPending: boolean | undefined;
  missingEmergencyLocation: boolean;
}

export function usersPage(ctx: PageContext, accountId: string): Page {
  const title = el("h1", { "data-test": "users-title" }, `Users of account ${accountId}`);
  const search = input("users-search", { type: "search", placeholder: "ann, @example.com, Smith" });
  const pending = el(
    "select",
    { "data-test": "users-filter-sign-out-pending" },
    el("option", { value: "" }, "Any"),
    el("option", { value: "true" }, "Sign-out pending"),
    el("option", { value: "false" }, "No sign-out pending"),
  );
  const missing = checkbox("users-filter-missing-location", false);

  const list = pager<User, UserFilters>(ctx, {
    test: "users-list",
    headers: ["Email", "Name", "Licence", "Number", "Inbound", "Outbound", "SMS", "Sign-out"],
    empty: "No users match.",
    filters: () => ({
      search: search.value.trim(),
      signOutPending: pending.value === "" ? undefined : pending.value === "true",
      missingEmergencyLocation: missing.checked,
    }),
    fetch: async (filters, pageToken, pageSize, signal) => {
      const res = await users.listUsers({ accountId, pageToken, pageSize, ...filters }, { signal });
      return { items: res.users, next: res.nextPageToken };
    },
    row: (u) => {
      const s = u.telephonySettings;
      return el(
        "tr",
        { "data-test": "user-row", "data-user-id": u.userId, "data-email": u.email },
        cell(link(u.email, href({ page: "user", accountId, userId: u.userId }), "user-link")),
        cell(u.displayName),
        cell(enumName(LicenseTypeSchema, u.licenseType)),
        cell(el("span", { "data-test": "user-row-number" }, u.primaryPhoneNumber)),
        cell(onOff(s?.inboundCalling)),
        cell(onOff(s?.outboundCalling)),
        cell(onOff(s?.sms)),
        cell(
          u.signOutPending
            ? el("span", { class: "badge warn", "data-test": "user-row-pending" }, "pending")
            : "",
        ),
      );
    },
  });

  const element = el(
    "section",
    { "data-test": "users-page", "data-account-id": accountId },
    el("p", { class: "crumbs" }, link("Accounts", href({ page: "accounts" }), "crumb-accounts")),
    title,
    form(
      "users-filter",
      () => void list.reset(),
      field("Search", search, "Users whose email or name contains this text, in any case; empty lists every user."),
      field("Sign-out", pending),
      el("label", { class: "check" }, missing, "Missing an emergency location"),
      el("button", { type: "submit", "data-test": "users-search-apply" }, "Apply"),
    ),
    list.element,
    canWrite() ? createForm(ctx, accountId, () => void list.refresh()) : undefined,
  );

  // Session-service keys may not read accounts; the id is title enough then.
  if (!readsOnlyUsers()) {
    void ctx.load(async () => {
      const account = await accounts.getAccount({ accountId }, { signal: ctx.signal });
      title.textContent = `Users of ${account.name}`;
    });
  }
  void list.refresh();
  return {
    element,
    refresh: async () => void (await list.refresh()),
    // Every kind of change of a user of this account may change a row (or which rows match).
    concerns: (event) => event.accountId === accountId,
  };
}

function onOff(value: boolean | undefined): string {
  return value ? "on" : "off";
}

function createForm(ctx: PageContext, accountId: string, created: () => void): HTMLElement {
  const email = input("create-user-email", { type: "email" });
  const name = input("create-user-display-name", {});
  const license = enumSelect(LicenseTypeSchema, "create-user-license", LicenseType.BASIC);
  return el(
    "section",
    { class: "panel" },
    el("h2", {}, "New user"),
    form(
      "create-user-form",
      () =>
        void ctx.act(async () => {
          const user = await users.createUser(
            {
              accountId,
              email: email.value.trim(),
              displayName: name.value.trim(),
              licenseType: Number(license.value) as LicenseType,
            },
            { signal: ctx.signal },
          );
          email.value = "";
          name.value = "";
          ctx.notify(`Created user ${user.email} (${user.userId}).`);
          created();
        }),
      field("Email", email),
      field("Display name", name, "1 to 100 characters."),
      field("Licence", license),
      el("button", { type: "submit", "data-test": "create-user-submit" }, "Create user"),
    ),
  );
}
