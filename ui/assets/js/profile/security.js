// The Security tab's Two-Factor Authentication section: the authenticator app (Enable → QR code → Verify;
// Disable), security keys and passkeys (Add Key, trash icon to remove), and recovery codes (remaining
// count, Regenerate). Adding or removing a factor needs a recent sign-in: reauth.js asks for it.
import { ApiError, del, get, post } from "../api.js";
import { confirmDialog, formDialog, recoveryCodesDialog } from "../dialogs.js";
import { $, TRASH_ICON, base64FromText, clear, h, icon, say, show, timeEl } from "../dom.js";
import { busy, clearErrors, showError, showFieldErrors, value } from "../forms.js";
import { createCredential, webauthnMessage, webauthnSupported } from "../webauthn.js";
import { handledSignedOut, state } from "./context.js";
import { CANCELLED, confirmWithPassword, reauthCancelled, withReauth } from "./reauth.js";

function mfaError(error) {
  if (handledSignedOut(error)) return;
  say($("#mfa-error"), error.userMessage || error.message || String(error), "error");
}

function renderMfa(mfa) {
  state.mfa = mfa;
  const totpOn = Boolean(mfa.totp && mfa.totp.enabled);
  const badge = $("#totp-badge");
  badge.textContent = totpOn ? "Enabled" : "Disabled";
  badge.className = totpOn ? "badge badge-on" : "badge badge-off";
  show($("#totp-enable"), !totpOn);
  show($("#totp-disable"), totpOn);
  if (totpOn) show($("#totp-setup"), false);

  const list = clear($("#keys-list"));
  const keys = mfa.security_keys || [];
  show($("#keys-empty"), keys.length === 0);
  for (const key of keys) list.append(keyItem(key));

  const codes = mfa.recovery_codes;
  show($("#recovery-section"), Boolean(mfa.two_factor_enabled && codes));
  if (codes) {
    const n = codes.remaining;
    $("#recovery-remaining").textContent = `${n} recovery code${n === 1 ? "" : "s"} remaining`;
    $("#recovery-remaining").className = n <= 3 ? "strong text-warning" : "strong";
  }
}

function keyItem(key) {
  const meta = [h("span", {}, "Added ", timeEl(key.created_at))];
  meta.push(key.last_used_at ? h("span", {}, "Last used ", timeEl(key.last_used_at)) : h("span", {}, "Not used yet"));
  const remove = h("button", {
    type: "button", class: "icon-button", "aria-label": `Remove ${key.name}`, title: `Remove ${key.name}`,
  }, icon(TRASH_ICON));
  remove.addEventListener("click", () => removeKey(key, remove));
  return h("li", { class: "item", "data-key-id": key.id },
    h("div", { class: "item-main" },
      h("p", { class: "item-title" }, key.name, key.passkey ? h("span", { class: "badge badge-info" }, "Passkey") : null),
      h("p", { class: "item-meta muted" }, meta)),
    remove);
}

export async function loadMfa() {
  renderMfa(await get("/api/mfa"));
}

async function reloadMfa() {
  try {
    await loadMfa();
  } catch (error) {
    mfaError(error);
  }
}

/** A button disabled while its dialog was open lost the focus, so the dialog could not hand it back. */
function refocus(button) {
  if (!button.hidden && (document.activeElement === document.body || !document.activeElement)) button.focus();
}

async function showCodes(codes) {
  if (Array.isArray(codes) && codes.length) await recoveryCodesDialog(codes);
}

function setupTotp() {
  const setup = $("#totp-setup");
  const form = $("#totp-verify-form");
  $("#totp-enable").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    say($("#mfa-error"), "");
    button.disabled = true;
    try {
      const answer = await withReauth(() => post("/api/mfa/totp/setup"));
      if (answer === CANCELLED) return;
      $("#totp-qr").src = `data:image/svg+xml;base64,${base64FromText(answer.qr_svg)}`;
      $("#totp-secret").textContent = answer.secret;
      form.reset();
      clearErrors(form);
      show(setup, true);
      show(button, false);
      form.elements.namedItem("code").focus();
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) await reloadMfa();
      else mfaError(error);
    } finally {
      button.disabled = false;
      refocus(button);
    }
  });
  $("#totp-cancel").addEventListener("click", () => {
    show(setup, false);
    show($("#totp-enable"), true);
    $("#totp-enable").focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const code = value(form, "code").replace(/\s+/g, "");
    if (!/^\d{6}$/.test(code)) {
      showFieldErrors(form, { code: ["Enter the 6-digit code from your app."] });
      return;
    }
    await busy(form, async () => {
      try {
        // Asked again here: the pending setup (15 minutes) can outlive the 10-minute re-authentication.
        const answer = await withReauth(() => post("/api/mfa/totp/verify", { code }));
        if (answer === CANCELLED) return;
        show(setup, false);
        await showCodes(answer && answer.recovery_codes);
        await reloadMfa();
        $("#totp-disable").focus();
      } catch (error) {
        if (!handledSignedOut(error)) showError(form, error);
      }
    });
  });
  $("#totp-disable").addEventListener("click", async () => {
    say($("#mfa-error"), "");
    try {
      const done = await confirmWithPassword({
        title: "Disable authenticator app",
        message: "Enter your password to turn off the authenticator app for your account.",
        ssoMessage: "The authenticator app will be turned off for your account.",
        confirmLabel: "Disable",
        danger: true,
        submit: (password) => post("/api/mfa/totp/disable", password === undefined ? {} : { password }),
      });
      if (done) {
        await reloadMfa();
        $("#totp-enable").focus();
      }
    } catch (error) {
      mfaError(error);
    }
  });
}

async function removeKey(key, button) {
  say($("#mfa-error"), "");
  const sure = await confirmDialog({
    title: "Remove security key?",
    message: `“${key.name}” will no longer be able to verify your identity.`,
    confirmLabel: "Remove",
    danger: true,
  });
  if (!sure) return;
  try {
    const removed = await withReauth(() => del(`/api/mfa/webauthn/${encodeURIComponent(key.id)}`));
    if (removed === CANCELLED) return;
    say($("#keys-status"), `Removed “${key.name}”.`);
    await reloadMfa();
    $("#add-key").focus();
  } catch (error) {
    mfaError(error);
    if (document.contains(button)) button.focus();
  }
}

function setupKeys() {
  const add = $("#add-key");
  add.addEventListener("click", async () => {
    say($("#mfa-error"), "");
    say($("#keys-status"), "");
    if (!webauthnSupported()) {
      say($("#mfa-error"), "This browser doesn't support security keys or passkeys.", "error");
      return;
    }
    add.disabled = true;
    let credential;
    try {
      // Re-authenticate before the browser's key ceremony, so the credential it creates is not wasted.
      const options = await withReauth(() => post("/api/mfa/webauthn/register/options"));
      if (options === CANCELLED) {
        add.disabled = false;
        refocus(add);
        return;
      }
      credential = await createCredential(options);
    } catch (error) {
      add.disabled = false;
      if (error instanceof ApiError) mfaError(error);
      else say($("#mfa-error"), webauthnMessage(error), "error");
      return;
    }
    add.disabled = false;
    const isPasskey = Boolean(credential.clientExtensionResults && credential.clientExtensionResults.credProps &&
      credential.clientExtensionResults.credProps.rk);
    const result = await formDialog({
      title: "Name this key",
      message: "Give the key a name so you can recognise it later.",
      label: "Key name",
      name: "name",
      value: isPasskey ? "Passkey" : "Security key",
      confirmLabel: "Save Key",
      required: "Enter a name for the key.",
      // The server keeps the challenge when it asks for re-authentication: the same credential is sent again.
      submit: async (name) => {
        const answer = await withReauth(() => post("/api/mfa/webauthn/register", { credential, name: name.trim() }));
        if (answer === CANCELLED) throw reauthCancelled("Confirm it's you to save the key.");
        return answer;
      },
    });
    if (!result) return;
    say($("#keys-status"), `Added “${result.key ? result.key.name : "security key"}”.`);
    await showCodes(result.recovery_codes);
    await reloadMfa();
    add.focus();
  });
}

function setupRecoveryCodes() {
  $("#recovery-regenerate").addEventListener("click", async () => {
    say($("#mfa-error"), "");
    try {
      const answer = await confirmWithPassword({
        title: "Regenerate recovery codes",
        message: "Generating new codes invalidates all existing codes. Enter your password to continue.",
        ssoMessage: "Generating new codes invalidates all existing codes.",
        confirmLabel: "Regenerate",
        submit: (password) => post("/api/mfa/recovery-codes/regenerate", password === undefined ? {} : { password }),
      });
      if (answer && answer.recovery_codes) {
        await showCodes(answer.recovery_codes);
        await reloadMfa();
        $("#recovery-regenerate").focus();
      }
    } catch (error) {
      mfaError(error);
    }
  });
}

export function setupTwoFactor() {
  setupTotp();
  setupKeys();
  setupRecoveryCodes();
}
