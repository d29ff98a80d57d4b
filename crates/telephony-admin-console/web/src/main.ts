// The console's entry point: signs in (or recognises the key kept in this tab), starts the live
// changes stream, and puts the page the URL's hash names on screen, refreshing it when a change
// arrives.

import "./console.css";
import { Code, type ConnectError } from "@connectrpc/connect";
import type { Caller } from "./gen/telephony/admin/v1/account_service_pb";
import type { ChangeEvent } from "./gen/telephony/admin/v1/change_service_pb";
import { hasCode } from "./api/errors";
import { accounts } from "./api/transport";
import { resetLiveCount, startLive, stopLive } from "./live";
import { parse, redirect, type Route } from "./router";
import * as session from "./session";
import {
  clearError,
  context,
  mountShell,
  notify,
  showCaller,
  showError,
  showPage,
  type Page,
  type PageContext,
} from "./shell";
import { accountsPage } from "./pages/accounts";
import { inventoryPage } from "./pages/inventory";
import { numberPage } from "./pages/number";
import { orderPage, ordersPage } from "./pages/orders";
import { signInPage } from "./pages/signin";
import { userPage } from "./pages/user";
import { usersPage } from "./pages/users";
import { el } from "./dom";

/**
 * Changes often come in bursts (an assignment and its settings): the page is refreshed once
 * per window, at its end (a throttle with a trailing call). Under a steady flow of events that
 * is a refresh every window, never more often; a refresh still running when the next window
 * ends is followed by one more as soon as it is done.
 */
const REFRESH_WINDOW_MS = 250;

let current: { page: Page; controller: AbortController } | undefined;
let refreshTimer: ReturnType<typeof setTimeout> | undefined;
/** A refresh is running; `refreshAgain`: an event arrived meanwhile. */
let refreshing = false;
let refreshAgain = false;

function leavePage(): void {
  current?.controller.abort();
  current = undefined;
  clearTimeout(refreshTimer);
  refreshTimer = undefined;
  refreshAgain = false;
}

function build(route: Route, ctx: PageContext): Page {
  switch (route.page) {
    case "accounts":
      return accountsPage(ctx);
    case "users":
      return usersPage(ctx, route.accountId);
    case "user":
      return userPage(ctx, route.accountId, route.userId);
    case "inventory":
      return inventoryPage(ctx, false);
    case "deletion-queue":
      return inventoryPage(ctx, true);
    case "number":
      return numberPage(ctx, route.e164);
    case "orders":
      return ordersPage(ctx);
    case "order":
      return orderPage(ctx, route.orderId);
    case "not-found":
      return {
        element: el(
          "section",
          { "data-test": "not-found" },
          el("h1", {}, "No such page"),
          el("p", {}, `#${route.path}`),
        ),
      };
  }
}

function route(): void {
  if (!session.currentCaller()) return;
  const target = parse(window.location.hash);
  const scoped = session.scopedAccount();
  if (target.page === "accounts" && scoped !== "") {
    redirect({ page: "users", accountId: scoped });
    return;
  }
  leavePage();
  clearError();
  notify("");
  // The header counts the changes seen since the page on screen was opened.
  resetLiveCount();
  const controller = new AbortController();
  const page = build(target, context(controller.signal));
  current = { page, controller };
  showPage(page.element);
}

/** A change arrived (no event: events may have been missed): refresh the page if it may concern it. */
function changed(event?: ChangeEvent): void {
  const page = current?.page;
  if (!page?.refresh) return;
  if (event && page.concerns && !page.concerns(event)) return;
  // A refresh is already due at the end of this window: it will see this change too.
  if (refreshTimer !== undefined) return;
  refreshTimer = setTimeout(runRefresh, REFRESH_WINDOW_MS);
}

async function runRefresh(): Promise<void> {
  refreshTimer = undefined;
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  const page = current?.page;
  if (!page?.refresh) return;
  refreshing = true;
  try {
    await page.refresh();
  } catch {
    // A page's refresh shows its own failures (PageContext.load).
  } finally {
    refreshing = false;
    // Whatever page is on screen now: the events that asked for it were let through by it.
    if (refreshAgain) {
      refreshAgain = false;
      void runRefresh();
    }
  }
}

/** The key was refused on the live stream: back to sign-in, saying why. */
function keyRefused(err: ConnectError): void {
  session.signOut();
  showSignIn();
  showError(err);
}

function enter(caller: Caller): void {
  showCaller(caller);
  startLive(session.scopedAccount(), { onChange: changed, onUnauthenticated: keyRefused });
  route();
}

function showSignIn(): void {
  leavePage();
  stopLive();
  showCaller(null);
  const controller = new AbortController();
  current = { page: { element: el("div") }, controller };
  showPage(
    signInPage(context(controller.signal), (key, caller) => {
      session.signIn(key, caller);
      enter(caller);
    }),
  );
}

function signOut(): void {
  stopLive();
  session.signOut();
  clearError();
  notify("");
  // The next person to sign in in this tab starts from the top.
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  showSignIn();
}

async function boot(): Promise<void> {
  mountShell(signOut);
  window.addEventListener("hashchange", route);
  if (session.storedKey() === null) {
    showSignIn();
    return;
  }
  // A reload: ask again who the kept key is (it may have been revoked meanwhile).
  try {
    const caller = await accounts.getCaller({});
    session.setCaller(caller);
    enter(caller);
  } catch (err) {
    if (hasCode(err, Code.Unauthenticated) || hasCode(err, Code.PermissionDenied)) session.signOut();
    showSignIn();
    showError(err);
  }
}

void boot();
