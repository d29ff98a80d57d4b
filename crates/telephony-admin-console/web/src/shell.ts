// The frame around every page: the header (who is signed in, navigation, the live-changes
// counter, sign-out), the error area, a notice line, and the page itself. Every call a page makes
// goes through `act` or `load`, which show a failure in the error area.

import { RoleSchema, type Caller } from "./gen/telephony/admin/v1/account_service_pb";
import type { ChangeEvent } from "./gen/telephony/admin/v1/change_service_pb";
import { describe, isCancelled } from "./api/errors";
import { button, el, enumName, replace } from "./dom";
import { canReadNumbers, isOrganisationKey, roleLabel } from "./session";
import { href } from "./router";

/** A page on screen: its element, and how to re-fetch what it shows when a change arrives. */
export interface Page {
  element: HTMLElement;
  refresh?: () => Promise<void>;
  /**
   * Whether a change event may concern what the page shows; false skips the refresh. Absent:
   * every event may. A cheap test on the event's fields, erring on the side of true.
   */
  concerns?: (event: ChangeEvent) => boolean;
}

/** What a page gets: a signal aborted when it is left, and the shell's call wrappers. */
export interface PageContext {
  signal: AbortSignal;
  /** A user's action: clears the previous error and notice, shows the failure if any. */
  act(work: () => Promise<void>): Promise<boolean>;
  /** A read (first load or refresh): shows the failure if any, keeps the current error. */
  load(work: () => Promise<void>): Promise<boolean>;
  notify(text: string): void;
}

const header = el("header", { class: "header", hidden: true });
const whoName = el("span", { "data-test": "caller-key-name", class: "who-name" });
const whoRole = el("span", { "data-test": "caller-role", class: "badge" });
const whoScope = el("span", { "data-test": "caller-scope", class: "who-scope" });
const nav = el("nav", { class: "nav", "data-test": "nav" });
const liveCounter = el("span", { "data-test": "live-counter", "data-count": "0", class: "live-counter" });
const liveStatus = el("span", { "data-test": "live-status", "data-state": "stopped", class: "live-status" });
const signOutButton = button("Sign out", "sign-out", () => onSignOut());

const errorCode = el("strong", { "data-test": "error-code", class: "error-code" });
const errorMessage = el("span", { "data-test": "error-message", class: "error-message" });
const errorReason = el("div", { "data-test": "error-reason", class: "error-reason" });
const errorList = el("ul", { "data-test": "error-details", class: "error-details" });
const errorArea = el(
  "section",
  { "data-test": "error", class: "error", role: "alert", hidden: true },
  el("div", {}, errorCode, " ", errorMessage),
  errorReason,
  errorList,
  button("Dismiss", "error-dismiss", () => clearError(), { class: "link-button" }),
);
const notice = el("p", { "data-test": "notice", class: "notice", role: "status", hidden: true });
const main = el("main", { "data-test": "main", class: "main" });

let onSignOut: () => void = () => {};
let pending = 0;

export function mountShell(signOut: () => void): void {
  onSignOut = signOut;
  header.append(
    el("div", { class: "brand" }, "Telephony admin"),
    nav,
    el("div", { class: "who" }, whoName, whoRole, whoScope),
    el("div", { class: "live" }, liveCounter, liveStatus),
    signOutButton,
  );
  document.body.append(header, errorArea, notice, main);
}

/** Shows the header for a signed-in caller, or hides it (null). */
export function showCaller(caller: Caller | null): void {
  header.hidden = caller === null;
  if (!caller) return;
  whoName.textContent = caller.keyName || caller.keyId;
  whoRole.textContent = roleLabel(caller.role);
  whoRole.setAttribute("data-role", enumName(RoleSchema, caller.role));
  whoScope.textContent = caller.accountId ? `account ${caller.accountId}` : "organisation";
  whoScope.setAttribute("data-account-id", caller.accountId);
  const links = [
    el(
      "a",
      { href: href({ page: "accounts" }), "data-test": "nav-accounts" },
      caller.accountId ? "Account" : "Accounts",
    ),
  ];
  if (canReadNumbers()) {
    links.push(el("a", { href: href({ page: "inventory" }), "data-test": "nav-inventory" }, "Inventory"));
  }
  // Deleted numbers and orders are the organisation's: an account's key sees neither.
  if (canReadNumbers() && isOrganisationKey()) {
    links.push(
      el(
        "a",
        { href: href({ page: "deletion-queue" }), "data-test": "nav-deletion-queue" },
        "Deletion queue",
      ),
    );
    links.push(el("a", { href: href({ page: "orders" }), "data-test": "nav-orders" }, "Orders"));
  }
  replace(nav, ...links);
}

export function showLiveCount(count: number): void {
  liveCounter.setAttribute("data-count", String(count));
  liveCounter.textContent = `${count} ${count === 1 ? "change" : "changes"} since you opened this page`;
}

export function showLiveState(state: "connecting" | "live" | "retrying" | "stopped", detail = ""): void {
  liveStatus.setAttribute("data-state", state);
  liveStatus.textContent = detail ? `${state}: ${detail}` : state;
}

export function showError(err: unknown): void {
  const f = describe(err);
  errorCode.textContent = f.code;
  errorMessage.textContent = f.message;
  errorReason.textContent = f.reason;
  errorReason.hidden = f.reason === "";
  replace(
    errorList,
    ...f.violations.map((v) => el("li", { "data-test": "error-violation" }, v)),
    ...f.preconditions.map((p) => el("li", { "data-test": "error-precondition" }, p)),
    ...f.resources.map((r) => el("li", { "data-test": "error-resource" }, r)),
  );
  errorArea.hidden = false;
}

export function clearError(): void {
  errorArea.hidden = true;
  errorCode.textContent = "";
  errorMessage.textContent = "";
  errorReason.textContent = "";
  replace(errorList);
}

export function notify(text: string): void {
  notice.textContent = text;
  notice.hidden = text === "";
}

async function run(work: () => Promise<void>): Promise<boolean> {
  pending += 1;
  main.setAttribute("aria-busy", "true");
  try {
    await work();
    return true;
  } catch (err) {
    if (!isCancelled(err)) showError(err);
    return false;
  } finally {
    pending -= 1;
    if (pending === 0) main.removeAttribute("aria-busy");
  }
}

export function context(signal: AbortSignal): PageContext {
  return {
    signal,
    act: (work) => {
      clearError();
      notify("");
      return run(work);
    },
    load: (work) => run(work),
    notify,
  };
}

/** Puts a page (or the sign-in form) on screen. */
export function showPage(element: HTMLElement): void {
  replace(main, element);
}
