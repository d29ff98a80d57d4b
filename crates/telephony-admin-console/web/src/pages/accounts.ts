// Accounts of the organisation: the list (by name prefix, paged), opening one by id, and creating
// one (organisation admin keys).

import type { Account } from "../gen/telephony/admin/v1/account_service_pb";
import { accounts } from "../api/transport";
import { cell, el, field, form, formatTime, input, link } from "../dom";
import { href, go } from "../router";
import { canWrite, isOrganisationKey, readsOnlyUsers } from "../session";
import type { Page, PageContext } from "../shell";
import { pager } from "./pager";

export function accountsPage(ctx: PageContext): Page {
  const prefix = input("accounts-filter-name-prefix", { placeholder: "Name starts with" });
  const list = pager<Account, string>(ctx, {
    test: "accounts-list",
    headers: ["Name", "Account id", "Created", ""],
    empty: "No accounts.",
    filters: () => prefix.value.trim(),
    fetch: async (namePrefix, pageToken, pageSize, signal) => {
      const res = await accounts.listAccounts({ pageToken, pageSize, namePrefix }, { signal });
      return { items: res.accounts, next: res.nextPageToken };
    },
    row: (a) =>
      el(
        "tr",
        { "data-test": "account-row", "data-account-id": a.accountId },
        cell(el("span", { "data-test": "account-name" }, a.name)),
        cell(el("code", {}, a.accountId)),
        cell(formatTime(a.createTime)),
        cell(link("Users", href({ page: "users", accountId: a.accountId }), "account-users-link")),
      ),
  });

  const openId = input("open-account-id", { placeholder: "Account id" });
  const open = form(
    "open-account-form",
    () => {
      const id = openId.value.trim();
      if (id) go({ page: "users", accountId: id });
    },
    field("Open an account by id", openId),
    el("button", { type: "submit", "data-test": "open-account-submit" }, "Open"),
  );

  // A session-service key may not list accounts: it opens one by id.
  if (readsOnlyUsers()) {
    return { element: el("section", { "data-test": "accounts-page" }, el("h1", {}, "Accounts"), open) };
  }
  const element = el(
    "section",
    { "data-test": "accounts-page" },
    el("h1", {}, "Accounts"),
    form(
      "accounts-filter",
      () => void list.reset(),
      field("Name prefix", prefix),
      el("button", { type: "submit", "data-test": "accounts-filter-apply" }, "Search"),
    ),
    list.element,
    open,
    canWrite() && isOrganisationKey() ? createForm(ctx, () => void list.refresh()) : undefined,
  );
  void list.refresh();
  // Change events are about users: none changes the accounts listed.
  return { element, refresh: async () => void (await list.refresh()), concerns: () => false };
}

function createForm(ctx: PageContext, created: () => void): HTMLElement {
  const name = input("create-account-name", {});
  const submit = el("button", { type: "submit", "data-test": "create-account-submit" }, "Create account");
  return el(
    "section",
    { class: "panel" },
    el("h2", {}, "New account"),
    form(
      "create-account-form",
      () =>
        void ctx.act(async () => {
          const account = await accounts.createAccount({ name: name.value.trim() }, { signal: ctx.signal });
          name.value = "";
          ctx.notify(`Created account ${account.name} (${account.accountId}).`);
          created();
        }),
      field("Name", name, "1 to 100 characters."),
      submit,
    ),
  );
}
