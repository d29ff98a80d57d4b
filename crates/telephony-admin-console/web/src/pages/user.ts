// A user's page: their number (assign from the inventory, unassign after a confirmation),
// their calling and SMS permissions (each change saved on its own, with a mask naming only it),
// their pending sign-out and its acknowledgement, and their name and licence.

import { create } from "@bufbuild/protobuf";
import {
  EmergencyLocationSourceSchema,
  LicenseType,
  LicenseTypeSchema,
  TelephonySettingsSchema,
  type TelephonySettings,
  type User,
} from "../gen/telephony/admin/v1/common_pb";
import { telephony, users } from "../api/transport";
import {
  append,
  button,
  checkbox,
  el,
  enumName,
  enumSelect,
  field,
  form,
  formatTime,
  input,
  link,
  replace,
  term,
  requestId,
} from "../dom";
import { href } from "../router";
import { canAcknowledge, canReadNumbers, canWrite } from "../session";
import type { Page, PageContext } from "../shell";
import { numberPicker } from "./picker";

type SettingKey = "inboundCalling" | "outboundCalling" | "sms";
const SETTINGS: { key: SettingKey; path: string; label: string }[] = [
  { key: "inboundCalling", path: "inbound_calling", label: "Inbound calling" },
  { key: "outboundCalling", path: "outbound_calling", label: "Outbound calling" },
  { key: "sms", path: "sms", label: "SMS" },
];

export function userPage(ctx: PageContext, accountId: string, userId: string): Page {
  const opts = { signal: ctx.signal };
  let user: User | undefined;
  // Every answer applied bumps it: a reload started before an action's answer (or before a
  // later reload) is dropped when it comes back, so it cannot undo what is on screen.
  let generation = 0;

  const title = el("h1", { "data-test": "user-title" }, userId);
  const details = el("dl", { class: "details", "data-test": "user-details" });
  const number = el("code", { "data-test": "user-phone-number", "data-e164": "" });
  const numberLink = el("span");
  const noNumberHint = el(
    "small",
    { class: "hint", hidden: true },
    "Assign a number before turning calling or SMS on.",
  );
  const boxes = new Map<SettingKey, HTMLInputElement>();
  const pending = el("p", { "data-test": "sign-out-pending", "data-pending": "false", class: "pending" });

  const picker = numberPicker(ctx, accountId, (e164, locationId) => {
    void ctx.act(async () => {
      answered(
        await telephony.assignPhoneNumber(
          {
            accountId,
            userId,
            e164PhoneNumber: e164,
            emergencyLocationId: locationId,
            requestId: requestId(),
          },
          opts,
        ),
      );
      picker.close();
      ctx.notify(`Assigned ${e164}. Calling and SMS are off until turned on.`);
      // The effective emergency location may have changed with it: only GetUser answers it.
      await reload();
    });
  });
  const assign = button("Assign number", "assign-number", () => picker.open(), { hidden: true });
  const unassign = button("Unassign", "unassign-number", () => dialog.showModal(), {
    hidden: true,
    class: "danger",
  });
  const dialog = unassignDialog(() => {
    void ctx.act(async () => {
      const before = user?.primaryPhoneNumber ?? "";
      answered(
        await telephony.unassignPhoneNumber(
          { accountId, userId, confirm: true, requestId: requestId() },
          opts,
        ),
      );
      ctx.notify(`Unassigned ${before}.`);
      // The number's own location, if it had one, went with it.
      await reload();
    });
  });
  const acknowledge = button(
    "Acknowledge sign-out",
    "acknowledge-sign-out",
    () => {
      const through = user?.signOutPending?.latestChangeSequence;
      if (through === undefined) return;
      void ctx.act(async () => {
        answered(
          await users.acknowledgeSignOut(
            { accountId, userId, throughSequence: through, requestId: requestId() },
            opts,
          ),
        );
        ctx.notify(`Acknowledged the sign-out through change ${through}.`);
      });
    },
    { hidden: true },
  );
  const logout = button("Request sign-out", "logout-user", () => {
    void ctx.act(async () => {
      const res = await users.logoutUser({ accountId, userId }, opts);
      ctx.notify(`Sign-out requested (change ${res.sequence}).`);
      await reload();
    });
  });

  const settings = el(
    "fieldset",
    { class: "settings", "data-test": "telephony-settings" },
    el("legend", {}, "Calling and SMS"),
  );
  for (const s of SETTINGS) {
    const box = checkbox(`setting-${s.path}`, false, { name: s.path, disabled: !canWrite() });
    box.addEventListener("change", () => void save(s, box));
    boxes.set(s.key, box);
    append(settings, el("label", { class: "check" }, box, s.label));
  }
  append(settings, noNumberHint);

  /** Saves one permission; on failure the box goes back to what the server holds. */
  async function save(s: (typeof SETTINGS)[number], box: HTMLInputElement): Promise<void> {
    const wanted = create(TelephonySettingsSchema);
    wanted[s.key] = box.checked;
    box.disabled = true;
    const ok = await ctx.act(async () => {
      const saved = await telephony.updateTelephonySettings(
        {
          accountId,
          userId,
          telephonySettings: wanted,
          updateMask: { paths: [s.path] },
          requestId: requestId(),
        },
        opts,
      );
      generation += 1;
      if (user) user.telephonySettings = saved;
      showSettings(saved);
      ctx.notify(`${s.label} ${saved[s.key] ? "on" : "off"}.`);
    });
    if (!ok) showSettings(user?.telephonySettings);
    box.disabled = !canWrite();
  }

  function showSettings(s: TelephonySettings | undefined): void {
    for (const { key } of SETTINGS) {
      const box = boxes.get(key);
      if (box) box.checked = s?.[key] ?? false;
    }
  }

  const edit = canWrite() ? editForm(ctx, accountId, userId, () => user, answered) : undefined;

  /** Shows a user an action answered: newer than any reload still in flight. */
  function answered(u: User): void {
    generation += 1;
    // Only GetUser answers the effective emergency location; the other answers leave it out.
    if (!u.emergencyLocation && user?.emergencyLocation) u.emergencyLocation = user.emergencyLocation;
    show(u);
  }

  function show(u: User): void {
    user = u;
    title.textContent = u.displayName ? `${u.displayName} (${u.email})` : u.email;
    const loc = u.emergencyLocation;
    replace(
      details,
      ...term("Email", u.email, "user-email"),
      ...term("Display name", u.displayName, "user-display-name"),
      ...term("Licence", enumName(LicenseTypeSchema, u.licenseType), "user-license"),
      ...term("User id", u.userId, "user-id"),
      ...term(
        "Emergency location",
        loc ? `${loc.locationId} (${enumName(EmergencyLocationSourceSchema, loc.source)})` : "none",
        "user-emergency-location",
      ),
      ...term("Created", formatTime(u.createTime)),
      ...term("Updated", formatTime(u.updateTime)),
    );
    const e164 = u.primaryPhoneNumber;
    number.textContent = e164 || "No number";
    number.setAttribute("data-e164", e164);
    replace(
      numberLink,
      e164 && canReadNumbers()
        ? link("History and details", href({ page: "number", e164 }), "user-number-link")
        : undefined,
    );
    assign.hidden = e164 !== "";
    unassign.hidden = e164 === "";
    noNumberHint.hidden = e164 !== "" || !canWrite();
    if (e164 !== "") picker.close();
    showSettings(u.telephonySettings);
    const p = u.signOutPending;
    pending.setAttribute("data-pending", p ? "true" : "false");
    pending.setAttribute("data-latest-sequence", p ? String(p.latestChangeSequence) : "");
    pending.textContent = p
      ? `Sign-out pending since ${formatTime(p.oldestChangeTime)}: changes ${p.oldestChangeSequence} to ${p.latestChangeSequence} not yet picked up.`
      : "No sign-out pending.";
    acknowledge.hidden = !p;
    dialog.describe(e164, u.email);
    edit?.fill(u);
  }

  async function reload(): Promise<void> {
    const mine = ++generation;
    const u = await users.getUser({ accountId, userId }, opts);
    if (mine === generation) show(u);
  }

  const element = el(
    "section",
    { "data-test": "user-page", "data-account-id": accountId, "data-user-id": userId },
    el(
      "p",
      { class: "crumbs" },
      link("Accounts", href({ page: "accounts" }), "crumb-accounts"),
      " / ",
      link("Users", href({ page: "users", accountId }), "crumb-users"),
    ),
    title,
    details,
    el(
      "section",
      { class: "panel" },
      el("h2", {}, "Phone number"),
      el("p", { class: "number-line" }, number, " ", numberLink),
      canWrite() ? el("p", { class: "actions" }, assign, unassign) : undefined,
      canWrite() ? picker.element : undefined,
      settings,
    ),
    el(
      "section",
      { class: "panel" },
      el("h2", {}, "Sign-out"),
      pending,
      el(
        "p",
        { class: "actions" },
        canAcknowledge() ? acknowledge : undefined,
        canWrite() ? logout : undefined,
      ),
    ),
    edit?.element,
    dialog.element,
  );
  void ctx.load(reload);
  return {
    element,
    refresh: async () => {
      await Promise.all([ctx.load(reload), picker.isOpen() ? picker.refresh() : undefined]);
    },
    // This user's changes; with the picker open, any change (a number taken by anyone leaves
    // the picker's list of unassigned numbers).
    concerns: (event) => (event.accountId === accountId && event.userId === userId) || picker.isOpen(),
  };
}

/** The confirmation step of an unassignment: a modal dialog of the page, not window.confirm. */
function unassignDialog(confirmed: () => void): {
  element: HTMLDialogElement;
  describe(e164: string, email: string): void;
  showModal(): void;
} {
  const text = el("p", { "data-test": "unassign-dialog-text" });
  const element = el(
    "dialog",
    { "data-test": "unassign-dialog", class: "dialog" },
    el("h2", {}, "Unassign the number?"),
    text,
    el(
      "p",
      { class: "actions" },
      button(
        "Unassign",
        "unassign-confirm",
        () => {
          element.close();
          confirmed();
        },
        { class: "danger" },
      ),
      button("Cancel", "unassign-cancel", () => element.close()),
    ),
  );
  return {
    element,
    describe: (e164, email) => {
      text.textContent = `${e164} goes back to the inventory, and ${email}'s calling and SMS are turned off. They must sign out and back in.`;
    },
    showModal: () => element.showModal(),
  };
}

function editForm(
  ctx: PageContext,
  accountId: string,
  userId: string,
  current: () => User | undefined,
  show: (u: User) => void,
): { element: HTMLElement; fill(u: User): void } {
  const name = input("edit-user-display-name");
  const license = enumSelect(LicenseTypeSchema, "edit-user-license", LicenseType.BASIC);
  let filledFor = "";
  const submit = (): void => {
    const u = current();
    if (!u) return;
    const paths: string[] = [];
    const displayName = name.value.trim();
    const licenseType = Number(license.value) as LicenseType;
    if (displayName !== u.displayName) paths.push("display_name");
    if (licenseType !== u.licenseType) paths.push("license_type");
    if (paths.length === 0) {
      ctx.notify("Nothing to change.");
      return;
    }
    void ctx.act(async () => {
      const updated = await users.updateUser(
        { accountId, userId, displayName, licenseType, updateMask: { paths } },
        { signal: ctx.signal },
      );
      filledFor = "";
      show(updated);
      ctx.notify("Saved.");
    });
  };
  const element = el(
    "section",
    { class: "panel" },
    el("h2", {}, "Name and licence"),
    form(
      "edit-user-form",
      submit,
      field("Display name", name, "1 to 100 characters."),
      field("Licence", license),
      el("button", { type: "submit", "data-test": "edit-user-submit" }, "Save"),
    ),
  );
  return {
    element,
    // Filled from the server when the user is first shown or after a save, not on each refresh,
    // so that a change arriving meanwhile does not overwrite what is being typed.
    fill: (u) => {
      if (filledFor === u.userId) return;
      filledFor = u.userId;
      name.value = u.displayName;
      license.value = String(u.licenseType);
    },
  };
}
