// The signed-in key and who it is. The key lives only in this tab's sessionStorage (it survives
// a reload and hash changes, never reaches a URL, a cookie or localStorage); the caller is what
// AccountService.GetCaller answered for it.

import { Role, type Caller } from "./gen/telephony/admin/v1/account_service_pb";

const KEY_ITEM = "telephony-admin-console.api-key";

let caller: Caller | undefined;

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY_ITEM);
}

export function signIn(key: string, who: Caller): void {
  sessionStorage.setItem(KEY_ITEM, key);
  caller = who;
}

/** Remembers who an already stored key is (after a reload). */
export function setCaller(who: Caller): void {
  caller = who;
}

export function signOut(): void {
  sessionStorage.removeItem(KEY_ITEM);
  caller = undefined;
}

export function currentCaller(): Caller | undefined {
  return caller;
}

/** Changes: only admin keys. */
export function canWrite(): boolean {
  return caller?.role === Role.ADMIN;
}

/** Acknowledging a sign-out: admin and session-service keys. */
export function canAcknowledge(): boolean {
  return caller?.role === Role.ADMIN || caller?.role === Role.SESSION_SERVICE;
}

/** Accounts, the inventory, orders and numbers: every key but session-service ones. */
export function canReadNumbers(): boolean {
  return caller !== undefined && caller.role !== Role.SESSION_SERVICE;
}

/** Session-service keys read users and nothing else of the organisation. */
export function readsOnlyUsers(): boolean {
  return caller?.role === Role.SESSION_SERVICE;
}

/** The account the key is limited to; "" for an organisation key. */
export function scopedAccount(): string {
  return caller?.accountId ?? "";
}

export function isOrganisationKey(): boolean {
  return caller !== undefined && caller.accountId === "";
}

export function roleLabel(role: Role): string {
  switch (role) {
    case Role.ADMIN:
      return "admin";
    case Role.VIEWER:
      return "viewer";
    case Role.SESSION_SERVICE:
      return "session-service";
    default:
      return "unknown";
  }
}
