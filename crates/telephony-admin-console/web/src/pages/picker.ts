// The number picker of a user's page: the inventory's unassigned business-calling numbers,
// searched by the start of their E.164 form, and the emergency location to give the user with
// the number (optional; US and Canadian numbers need one somewhere). An account with no
// location yet gets one here: "New emergency location" creates an address and a location on it
// in one CreateEmergencyLocation call, and selects it for the assignment that follows.

import {
  PhoneNumberProductType,
  PhoneNumberStatus,
  PhoneNumberTypeSchema,
  type PhoneNumber,
} from "../gen/telephony/admin/v1/phone_number_service_pb";
import {
  ValidationState,
  ValidationStateSchema,
  type CivicAddress,
  type EmergencyLocation,
} from "../gen/telephony/admin/v1/emergency_location_service_pb";
import { locations, numbers } from "../api/transport";
import { button, cell, el, enumName, field, form, input, replace } from "../dom";
import { canWrite } from "../session";
import type { PageContext } from "../shell";
import { pager } from "./pager";

export interface Picker {
  element: HTMLElement;
  open(): void;
  close(): void;
  isOpen(): boolean;
  /** Re-reads the numbers listed (with the search applied) and the account's locations. */
  refresh(): Promise<void>;
}

const SEARCH_DELAY_MS = 300;

export function numberPicker(
  ctx: PageContext,
  accountId: string,
  choose: (e164: string, locationId: string) => void,
): Picker {
  const search = input("picker-search", { type: "search", placeholder: "+1206" });
  const location = el("select", { "data-test": "picker-location" });
  const list = pager<PhoneNumber, string>(ctx, {
    test: "picker-list",
    headers: ["Number", "Country", "Type", ""],
    empty: "No unassigned business-calling number matches.",
    filters: () => e164Prefix(search.value),
    fetch: async (prefix, pageToken, pageSize, signal) => {
      const res = await numbers.listPhoneNumbers(
        {
          status: PhoneNumberStatus.UNASSIGNED,
          productType: PhoneNumberProductType.BUSINESS_CALLING,
          e164Prefix: prefix,
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

  // Answers of a superseded read of the locations are dropped.
  let locationsRead = 0;
  /**
   * Reads the account's locations into the select, keeping the selection. `select`, a location
   * just created, is selected at once (and kept listed even if the read does not have it yet).
   */
  async function readLocations(select?: EmergencyLocation): Promise<void> {
    const mine = ++locationsRead;
    if (select) {
      location.append(...locationOptions([select]).slice(1));
      location.value = select.locationId;
    }
    const all = await accountLocations(accountId, ctx.signal);
    if (mine !== locationsRead) return;
    if (select && !all.some((l) => l.locationId === select.locationId)) all.push(select);
    const keep = location.value;
    replace(location, ...locationOptions(all));
    location.value = all.some((l) => l.locationId === keep) ? keep : "";
  }

  const newLocation = canWrite()
    ? newLocationForm(ctx, accountId, (created) => readLocations(created))
    : undefined;

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
    el(
      "div",
      { class: "actions" },
      field("Emergency location", location, "Becomes the user's own location with the number."),
      newLocation?.toggle,
    ),
    newLocation?.element,
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
      void ctx.load(() => readLocations());
    },
    close,
    isOpen: () => !element.hidden,
    refresh: async () => {
      await Promise.all([list.refresh(), ctx.load(() => readLocations())]);
    },
  };
}

/** "+1 (206) 55" → "+120655"; digits alone get their "+". Empty: no filter. */
function e164Prefix(text: string): string {
  const compact = text.replace(/[\s().-]/g, "");
  if (compact === "" || compact === "+") return "";
  return compact.startsWith("+") ? compact : `+${compact}`;
}

/** Every location of the account, page by page (the server's default page size). */
async function accountLocations(accountId: string, signal: AbortSignal): Promise<EmergencyLocation[]> {
  const all: EmergencyLocation[] = [];
  let pageToken = "";
  do {
    const res = await locations.listEmergencyLocations({ accountId, pageToken, pageSize: 0 }, { signal });
    all.push(...res.locations);
    pageToken = res.nextPageToken;
  } while (pageToken !== "");
  return all;
}

function describeAddress(a: CivicAddress | undefined): string {
  if (!a) return "";
  return [
    a.companyName,
    a.houseNumber + a.houseNumberSuffix,
    a.preDirectional,
    a.streetName,
    a.streetSuffix,
    a.postDirectional,
    a.city,
    a.stateOrProvince,
    a.postalCode,
    a.country,
  ]
    .filter(Boolean)
    .join(" ");
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
      const where = describeAddress(loc.address?.address) || loc.addressId;
      const state = loc.address?.validationState ?? ValidationState.UNSPECIFIED;
      const label = loc.place ? `${loc.place}, ${where}` : where;
      return el(
        "option",
        {
          value: loc.locationId,
          "data-location-id": loc.locationId,
          "data-validation-state": enumName(ValidationStateSchema, state),
        },
        state === ValidationState.INVALID ? `${label} (invalid address)` : label,
      );
    }),
  ];
}

/**
 * "New emergency location": a civic address and a place, created in the account with one
 * CreateEmergencyLocation (empty address_id, account_id and address). Shows what the validator
 * found; `created` puts the new location in the picker's select.
 */
function newLocationForm(
  ctx: PageContext,
  accountId: string,
  created: (location: EmergencyLocation) => Promise<void>,
): { toggle: HTMLButtonElement; element: HTMLElement } {
  const country = input("new-location-country", { value: "US", size: 4, maxlength: 2 });
  const company = input("new-location-company");
  const houseNumber = input("new-location-house-number", { size: 8 });
  const houseNumberSuffix = input("new-location-house-number-suffix", { size: 4 });
  const preDirectional = input("new-location-pre-directional", { size: 4 });
  const streetName = input("new-location-street-name");
  const streetSuffix = input("new-location-street-suffix", { size: 6, placeholder: "St" });
  const postDirectional = input("new-location-post-directional", { size: 4 });
  const city = input("new-location-city");
  const state = input("new-location-state", { size: 4, placeholder: "WA" });
  const postalCode = input("new-location-postal-code", { size: 10 });
  const latitude = input("new-location-latitude", { size: 10, inputmode: "decimal" });
  const longitude = input("new-location-longitude", { size: 10, inputmode: "decimal" });
  const place = input("new-location-place", { placeholder: "Floor 3, Suite 300" });

  const result = el("p", {
    "data-test": "new-location-result",
    "data-validation-state": "",
    "data-location-id": "",
    class: "result",
    hidden: true,
  });
  const problems = el("ul", { "data-test": "new-location-problems", class: "problems", hidden: true });

  const more = el(
    "div",
    { class: "form-row", "data-test": "new-location-more-fields", hidden: true },
    field("House number suffix", houseNumberSuffix, "A in 1600A."),
    field("Pre-directional", preDirectional, "N in N Main St."),
    field("Post-directional", postDirectional, "NW in Main St NW."),
    field("Latitude", latitude, "Degrees; both or neither."),
    field("Longitude", longitude),
  );
  const moreToggle = button(
    "More fields",
    "new-location-more",
    () => {
      more.hidden = !more.hidden;
      moreToggle.setAttribute("aria-expanded", String(!more.hidden));
      moreToggle.textContent = more.hidden ? "More fields" : "Fewer fields";
    },
    { class: "link-button", "aria-expanded": "false" },
  );

  const submit = el("button", { type: "submit", "data-test": "new-location-submit" }, "Create location");
  const body = form(
    "new-location-form",
    () => {
      submit.disabled = true;
      void ctx
        .act(async () => {
          const loc = await locations.createEmergencyLocation(
            {
              addressId: "",
              accountId,
              place: place.value.trim(),
              address: {
                country: country.value.trim().toUpperCase(),
                companyName: company.value.trim(),
                houseNumber: houseNumber.value.trim(),
                houseNumberSuffix: houseNumberSuffix.value.trim(),
                preDirectional: preDirectional.value.trim(),
                streetName: streetName.value.trim(),
                streetSuffix: streetSuffix.value.trim(),
                postDirectional: postDirectional.value.trim(),
                city: city.value.trim(),
                stateOrProvince: state.value.trim(),
                postalCode: postalCode.value.trim(),
                latitude: coordinate(latitude.value),
                longitude: coordinate(longitude.value),
              },
            },
            { signal: ctx.signal },
          );
          showResult(loc);
          ctx.notify(`Created emergency location ${loc.locationId}; it is selected for the assignment.`);
          await created(loc);
        })
        .finally(() => {
          submit.disabled = false;
        });
    },
    field("Company", company, "As a responder would ask for it."),
    field("House number", houseNumber),
    field("Street name", streetName),
    field("Street suffix", streetSuffix),
    field("City", city),
    field("State or province", state, "US: USPS code; CA: province code."),
    field("Postal code", postalCode),
    field("Country", country, "ISO 3166-1 alpha-2."),
    field("Place", place, "Floor, suite, room; may be empty."),
    moreToggle,
    more,
    submit,
  );

  function showResult(loc: EmergencyLocation): void {
    const address = loc.address;
    const stateValue = address?.validationState ?? ValidationState.UNSPECIFIED;
    const stateName = enumName(ValidationStateSchema, stateValue);
    result.setAttribute("data-validation-state", stateName);
    result.setAttribute("data-location-id", loc.locationId);
    result.textContent = `Location ${loc.locationId}: ${stateName}. ${validationMeaning(stateValue)}`;
    result.classList.toggle("invalid", stateValue === ValidationState.INVALID);
    result.hidden = false;
    const list = stateValue === ValidationState.INVALID ? (address?.validationProblems ?? []) : [];
    replace(
      problems,
      ...list.map((p) => el("li", { "data-test": "new-location-problem" }, `${p.field}: ${p.description}`)),
    );
    problems.hidden = list.length === 0;
  }

  const element = el(
    "section",
    { class: "subpanel", "data-test": "new-location", hidden: true },
    el("h3", {}, "New emergency location"),
    el(
      "p",
      { class: "hint" },
      "A new address of this account and a place on it, created together; the address is checked by the server's validator.",
    ),
    body,
    result,
    problems,
  );
  const toggle = button(
    "New emergency location",
    "new-location-open",
    () => {
      element.hidden = !element.hidden;
      toggle.setAttribute("aria-expanded", String(!element.hidden));
      if (!element.hidden) company.focus();
    },
    { class: "link-button", "aria-expanded": "false" },
  );
  return { toggle, element };
}

/** Empty: none given; otherwise the number as typed (the server checks the range). */
function coordinate(text: string): number | undefined {
  const t = text.trim();
  return t === "" ? undefined : Number(t);
}

function validationMeaning(state: ValidationState): string {
  switch (state) {
    case ValidationState.STRUCTURE_VALID:
      return "Its parts are right for its country (not checked against a map).";
    case ValidationState.UNVALIDATED:
      return "The validator has no rules for its country.";
    case ValidationState.INVALID:
      return "Stored, but something is wrong:";
    default:
      return "";
  }
}
