// Re-authentication in place for the console's sensitive actions (403 reauth-required): the admin confirms
// with their password, authenticator app or security key (POST /api/auth/reauth), then the action runs again.
// The client pages' helper (ui/assets/js/profile/) offers the password only; admins usually have a factor.
import { ApiError, get, post } from "../api.js";
import { h, say } from "../dom.js";
import { clearErrors, showError } from "../forms.js";
import { getCredential, webauthnMessage, webauthnSupported } from "../webauthn.js";

export const CANCELLED = Symbol("cancelled");
let counter = 0;

export function isReauthRequired(error) {
  return error instanceof ApiError && error.status === 403 && error.is("reauth-required");
}

/** Runs `action`; on 403 reauth-required asks the admin to confirm it's them, then runs it again. */
export async function withReauth(action) {
  try {
    return await action();
  } catch (error) {
    if (!isReauthRequired(error)) throw error;
    if (!(await reauthDialog())) return CANCELLED;
    return action();
  }
}

async function availableMethods() {
  const methods = [{ id: "password", label: "Password" }];
  try {
    const mfa = await get("/api/mfa");
    if (mfa.totp && mfa.totp.enabled) methods.push({ id: "totp", label: "Authenticator app" });
    if ((mfa.security_keys || []).length && webauthnSupported()) methods.push({ id: "key", label: "Security key" });
  } catch {
    // mfa unreachable: the password still confirms
  }
  return methods;
}

const FIELDS = {
  password: { label: "Password", type: "password", autocomplete: "current-password", required: "Enter your password." },
  totp: { label: "6-digit code", type: "text", autocomplete: "one-time-code", inputmode: "numeric",
    required: "Enter the 6-digit code from your app." },
};

/** The dialog; resolves true once the session counts as re-authenticated, false when cancelled. */
export async function reauthDialog() {
  const methods = await availableMethods();
  return new Promise((resolve) => {
    const id = `reauth-${++counter}`;
    let method = methods[0].id;
    let done = false;
    const opener = document.activeElement;
    const input = h("input", { id: `${id}-input`, name: "secret", "aria-describedby": `${id}-error` });
    const label = h("label", { for: input.id });
    const fieldError = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
    const field = h("div", { class: "field" }, label, input, fieldError);
    const keyNote = h("p", { class: "muted", hidden: true }, "Use your security key or passkey when your browser asks.");
    const confirm = h("button", { type: "submit", class: "button" }, "Confirm");
    const cancel = h("button", { type: "button", class: "button button-secondary" }, "Cancel");
    const choices = methods.length > 1 ? h("fieldset", { class: "choice-group" }, h("legend", {}, "Confirm with"),
      methods.map((m) => h("label", { class: "choice" },
        h("input", { type: "radio", name: "method", value: m.id, checked: m.id === method }), m.label))) : null;
    const form = h("form", { class: "dialog-form", novalidate: true }, choices, field, keyNote,
      h("p", { class: "form-error", role: "alert", hidden: true }), h("div", { class: "dialog-actions" }, cancel, confirm));
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": `${id}-title`, "aria-describedby": `${id}-desc` },
      h("h2", { id: `${id}-title`, class: "dialog-title" }, "Confirm it's you"),
      h("p", { id: `${id}-desc`, class: "dialog-text" }, "This action needs a recent sign-in. Confirm it's you to continue."),
      form);

    const choose = (next) => {
      method = next;
      clearErrors(form);
      const spec = FIELDS[method];
      field.hidden = !spec;
      keyNote.hidden = Boolean(spec);
      confirm.textContent = spec ? "Confirm" : "Use Security Key";
      if (spec) {
        label.textContent = spec.label;
        input.type = spec.type;
        input.autocomplete = spec.autocomplete;
        if (spec.inputmode) input.setAttribute("inputmode", spec.inputmode);
        else input.removeAttribute("inputmode");
        input.value = "";
      }
    };
    const answer = async () => {
      if (method === "key") {
        const options = await post("/api/auth/reauth/webauthn/options");
        let credential;
        try {
          credential = await getCredential(options);
        } catch (error) {
          throw Object.assign(new Error(webauthnMessage(error)), { userMessage: webauthnMessage(error) });
        }
        return post("/api/auth/reauth", { credential });
      }
      const secret = method === "totp" ? input.value.replace(/\s+/g, "") : input.value;
      return post("/api/auth/reauth", method === "totp" ? { totp_code: secret } : { password: secret });
    };

    if (choices) choices.addEventListener("change", (event) => choose(event.target.value));
    cancel.addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      if (FIELDS[method] && !input.value.trim()) {
        say(fieldError, FIELDS[method].required, "error");
        input.setAttribute("aria-invalid", "true");
        input.focus();
        return;
      }
      confirm.disabled = true;
      try {
        await answer();
        done = true;
        dialog.close();
      } catch (error) {
        // A refused password or code (401/422, named `password` or `totp_code` by the server, not by this
        // form) is said on the field; anything else (a cancelled key prompt, an outage) on the form.
        if (FIELDS[method] && error instanceof ApiError && [401, 422].includes(error.status)) {
          say(fieldError, error.userMessage, "error");
          input.setAttribute("aria-invalid", "true");
          input.focus();
        } else {
          showError(form, error);
        }
      } finally {
        confirm.disabled = false;
      }
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener && typeof opener.focus === "function" && document.contains(opener)) opener.focus();
      resolve(done);
    });
    document.body.append(dialog);
    choose(method);
    dialog.showModal();
    (FIELDS[method] ? input : confirm).focus();
  });
}
