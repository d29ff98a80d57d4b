// Hash routes: every page of the console has a URL (#/accounts/<id>/users/<user_id>, …) that
// can be opened directly, reloaded, or shared within the signed-in tab.

export type Route =
  | { page: "accounts" }
  | { page: "users"; accountId: string }
  | { page: "user"; accountId: string; userId: string }
  | { page: "inventory" }
  | { page: "deletion-queue" }
  | { page: "number"; e164: string }
  | { page: "orders" }
  | { page: "order"; orderId: string }
  | { page: "not-found"; path: string };

export function parse(hash: string): Route {
  const path = hash.replace(/^#/, "");
  const parts = path.split("/").filter(Boolean).map(decodeSegment);
  const [a, b, c, d] = parts;
  if (parts.length === 0) return { page: "accounts" };
  if (a === "accounts") {
    if (parts.length === 1) return { page: "accounts" };
    if (parts.length === 2 || (parts.length === 3 && c === "users")) return { page: "users", accountId: b };
    if (parts.length === 4 && c === "users") return { page: "user", accountId: b, userId: d };
  }
  if (a === "inventory" && parts.length === 1) return { page: "inventory" };
  if (a === "deletion-queue" && parts.length === 1) return { page: "deletion-queue" };
  if (a === "numbers" && parts.length === 2) return { page: "number", e164: b };
  if (a === "orders" && parts.length === 1) return { page: "orders" };
  if (a === "orders" && parts.length === 2) return { page: "order", orderId: b };
  return { page: "not-found", path };
}

export function href(route: Route): string {
  const seg = encodeURIComponent;
  switch (route.page) {
    case "accounts":
      return "#/accounts";
    case "users":
      return `#/accounts/${seg(route.accountId)}/users`;
    case "user":
      return `#/accounts/${seg(route.accountId)}/users/${seg(route.userId)}`;
    case "inventory":
      return "#/inventory";
    case "deletion-queue":
      return "#/deletion-queue";
    case "number":
      return `#/numbers/${seg(route.e164)}`;
    case "orders":
      return "#/orders";
    case "order":
      return `#/orders/${seg(route.orderId)}`;
    case "not-found":
      return `#/${route.path}`;
  }
}

export function go(route: Route): void {
  window.location.hash = href(route);
}

/** Replaces the current history entry (a redirect, not a step the Back button should revisit). */
export function redirect(route: Route): void {
  window.history.replaceState(null, "", href(route));
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
