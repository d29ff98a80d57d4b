// The number picker of a user's page: the inventory's unassigned business-calling numbers,
// searched by the start of their E.164 form, and the emergency location to give the user with
// the number (optional; US and Canadian numbers need one somewhere).

import {
  PhoneNumberProductType,
  PhoneNumberStatus,
  PhoneNumberTypeSchema,
  type PhoneNumber,
} from "../gen/telephony/admin/v1/phone_number_service_pb";
import type { EmergencyLocation } from "../gen/telephony/admin/v1/emergency_location_service_pb";
import { locations, numbers } from "../api/transport";
import { button, cell, el, enumName, field, form, input, replace } from "../dom";
import type { PageContext } from "../shell";
import { pager } from "./pager";

export interface Picker {
  element: HTMLElement;
  open(): void;
  close(): void;
}

const SEARCH_DELAY_MS = 300;

export function numberPicker(
  ctx: PageContext,
  accountId: string,
  choose: (e164: string, locationId: string) => void,
): Picker {
  const search = input("picker-search", { type: "search", placeholder: "+1206" });
  const location = el("select", { "data-test": "picker-location" });
  const list = pager<PhoneNumber>(ctx, {
    test: "picker-list",
    headers: ["Number", "Country", "Type", ""],
    empty: "No unassigned business-calling number matches.",
    fetch: async (pageToken, pageSize, signal) => {
      const res = await numbers.listPhoneNumbers(
        {
          status: PhoneNumberStatus.UNASSIGNED,
          productType: PhoneNumberProductType.BUSINESS_CALLING,
          e164Prefix: e164Prefix(search.value),
          pageToken,
          pageSize,
        },
        { signal },
      );
      return { items: res.phoneNumbers, next: res.nextPageToken };
    },
    row: (n) =>
      el(
        "tr",
        { "data-test": "picker-row", "data-e164": n.e164PhoneNumber },
        cell(el("code", {}, n.e164PhoneNumber)),
        cell(n.country),
        cell(enumName(PhoneNumberTypeSchema, n.type)),
        cell(button("Choose", "picker-choose", () => choose(n.e164PhoneNumber, location.value))),
      ),
  });

  let timer: ReturnType<typeof setTimeout> | undefined;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => void list.reset(), SEARCH_DELAY_MS);
  });

  const element = el(
    "section",
    { class: "panel picker", "data-test": "number-picker", hidden: true },
    el("h2", {}, "Assign a number"),
    form(
      "picker-form",
      () => {
        clearTimeout(timer);
        void list.reset();
      },
      field("Number starts with", search, "E.164 digits, e.g. +1206 (spaces and dashes are ignored)."),
      el("button", { type: "submit", "data-test": "picker-apply" }, "Search"),
    ),
    field("Emergency location", location, "Becomes the user's own location with the number."),
    list.element,
    button("Close", "picker-close", () => close(), { class: "link-button" }),
  );

  function close(): void {
    clearTimeout(timer);
    element.hidden = true;
  }

  return {
    element,
    open: () => {
      element.hidden = false;
      search.focus();
      void list.reset();
      void ctx.load(async () =>
        replace(location, ...locationOptions(await accountLocations(accountId, ctx.signal))),
      );
    },
    close,
  };
}

/** "+1 (206) 55" → "+120655"; digits alone get their "+". Empty: no filter. */
function e164Prefix(text: string): string {
  const compact = text.replace(/[\s().-]/g, "");
  if (compact === "" || compact === "+") return "";
  return compact.startsWith("+") ? compact : `+${compact}`;
}

async function accountLocations(accountId: string, signal: AbortSignal): Promise<EmergencyLocation[]> {
  const all: EmergencyLocation[] = [];
  let pageToken = "";
  do {
    const res = await locations.listEmergencyLocations({ accountId, pageToken, pageSize: 1000 }, { signal });
    all.push(...res.locations);
    pageToken = res.nextPageToken;
  } while (pageToken !== "");
  return all;
}

function locationOptions(list: EmergencyLocation[]): HTMLOptionElement[] {
  const none = el(
    "option",
    { value: "" },
    "None given here (the user's, the number's or the account's applies)",
  );
  return [
    none,
    ...list.map((loc) => {
      const a = loc.address?.address;
      const where = a
        ? [
            a.houseNumber + a.houseNumberSuffix,
            a.preDirectional,
            a.streetName,
            a.streetSuffix,
            a.postDirectional,
            a.city,
            a.stateOrProvince,
            a.country,
          ]
            .filter(Boolean)
            .join(" ")
        : loc.addressId;
      return el(
        "option",
        { value: loc.locationId, "data-location-id": loc.locationId },
        loc.place ? `${loc.place}, ${where}` : where,
      );
    }),
  ];
}
