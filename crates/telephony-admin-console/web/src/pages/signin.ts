// Sign-in: the API key is pasted here, checked with AccountService.GetCaller, and kept in this
// tab's sessionStorage only when the server accepts it (never in a password manager).

import type { Caller } from "../gen/telephony/admin/v1/account_service_pb";
import { accounts, bearerHeader } from "../api/transport";
import { el, field, form, input } from "../dom";
import type { PageContext } from "../shell";

export function signInPage(ctx: PageContext, onSignedIn: (key: string, caller: Caller) => void): HTMLElement {
  // A plain text input, masked by its class: a password input in a form makes browsers offer to
  // save the key in their password manager, and the key must stay in this tab only.
  const key = input("signin-key", {
    class: "secret",
    autocomplete: "off",
    autocapitalize: "off",
    autocorrect: "off",
    spellcheck: "false",
    "data-1p-ignore": true,
    "data-lpignore": "true",
    "data-bwignore": true,
  });
  const submit = el("button", { type: "submit", "data-test": "signin-submit" }, "Sign in");
  const signIn = (): void => {
    const secret = key.value.trim();
    if (secret === "") return;
    submit.disabled = true;
    void ctx
      .act(async () => {
        const caller = await accounts.getCaller({}, { headers: bearerHeader(secret), signal: ctx.signal });
        key.value = "";
        onSignedIn(secret, caller);
      })
      .finally(() => {
        submit.disabled = false;
      });
  };
  return el(
    "section",
    { class: "signin", "data-test": "signin" },
    el("h1", {}, "Telephony admin console"),
    form(
      "signin-form",
      signIn,
      field("API key", key, "Kept in this browser tab only, until you sign out or close it."),
      submit,
    ),
  );
}
