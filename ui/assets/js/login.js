// Sign in: email and password, then the second factor (authenticator code, security key or
// recovery code), or a passkey without a password.
import { ApiError, get, post, readCookie } from "./api.js";
import { $, $$, ready, say, show } from "./dom.js";
import { busy, clearErrors, requireFields, showError, showFieldErrors, value } from "./forms.js";
import { getCredential, webauthnMessage, webauthnSupported } from "./webauthn.js";

const PROFILE = "/portal/profile";
const LOW_CODES = 3;

const passwordStep = $("#password-step");
const secondStep = $("#second-factor-step");
const codesStep = $("#codes-warning-step");
const loginForm = $("#login-form");
const totpForm = $("#totp-form");
const recoveryForm = $("#recovery-form");

function goToProfile() {
  window.location.assign(PROFILE);
}

function finish(result, usedRecoveryCode = false) {
  const remaining = result ? result.recovery_codes_remaining : undefined;
  if (typeof remaining === "number" && (usedRecoveryCode || remaining <= LOW_CODES)) {
    show(passwordStep, false);
    show(secondStep, false);
    show(codesStep, true);
    const text = remaining === 0
      ? "You have no recovery codes left. Generate new ones now so you don't get locked out."
      : `You have ${remaining} recovery code${remaining === 1 ? "" : "s"} remaining.` +
        (remaining <= LOW_CODES ? " Generate new ones soon so you don't get locked out." : "");
    $("#codes-warning-text").textContent = text;
    $("#codes-warning-title").focus();
    return;
  }
  goToProfile();
}

function afterPassword(result) {
  if (result && result.state === "second_factor_required") {
    showSecondFactor(result.second_factors || []);
  } else {
    finish(result);
  }
}

function showSecondFactor(factors) {
  const available = ["totp", "webauthn", "recovery_code"].filter((f) => factors.includes(f));
  if (available.length === 0) available.push("totp");
  for (const chip of $$("[data-factor]")) show(chip, available.includes(chip.dataset.factor));
  show($("#factor-choices"), available.length > 1);
  show(passwordStep, false);
  show(secondStep, true);
  selectFactor(available[0], false);
  $("#second-factor-title").focus();
}

function selectFactor(factor, focus = true) {
  for (const chip of $$("[data-factor]")) chip.setAttribute("aria-pressed", String(chip.dataset.factor === factor));
  for (const panel of $$(".factor-panel")) show(panel, panel.dataset.panel === factor);
  if (!focus) return;
  const panel = $(`.factor-panel[data-panel="${factor}"]`);
  const target = panel && panel.querySelector("input, button");
  if (target) target.focus();
}

function restart(message = "") {
  loginForm.reset();
  totpForm.reset();
  recoveryForm.reset();
  for (const form of [loginForm, totpForm, recoveryForm]) clearErrors(form);
  show(secondStep, false);
  show(codesStep, false);
  show(passwordStep, true);
  say($("#signin-notice"), message, "warning");
  $("#login-email").focus();
}

/** A failed second-factor attempt: after too many the pending sign-in is void. */
function secondFactorFailed(form, error) {
  if (error instanceof ApiError && error.is("sign-in-expired")) {
    restart("Your sign-in has expired. Please sign in again.");
    return;
  }
  showError(form, error);
  const input = form.querySelector("input");
  if (input && !(error.errors && Object.keys(error.errors).length)) {
    input.setAttribute("aria-invalid", "true");
    input.select();
    input.focus();
  }
}

loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(loginForm);
  say($("#signin-notice"), "");
  const errors = requireFields(loginForm, { email: "Enter your email address.", password: "Enter your password." });
  if (Object.keys(errors).length) {
    showFieldErrors(loginForm, errors);
    return;
  }
  await busy(loginForm, async () => {
    try {
      afterPassword(await post("/api/auth/login", {
        email: value(loginForm, "email").trim(),
        password: value(loginForm, "password"),
      }));
    } catch (error) {
      showError(loginForm, error);
      $("#login-password").select();
    }
  });
});

totpForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(totpForm);
  const code = value(totpForm, "code").replace(/\s+/g, "");
  if (!/^\d{6}$/.test(code)) {
    showFieldErrors(totpForm, { code: ["Enter the 6-digit code from your app."] });
    return;
  }
  await busy(totpForm, async () => {
    try {
      finish(await post("/api/auth/login/totp", { code }));
    } catch (error) {
      secondFactorFailed(totpForm, error);
    }
  });
});

recoveryForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(recoveryForm);
  const code = value(recoveryForm, "code").trim();
  if (!code) {
    showFieldErrors(recoveryForm, { code: ["Enter one of your recovery codes."] });
    return;
  }
  await busy(recoveryForm, async () => {
    try {
      finish(await post("/api/auth/login/recovery-code", { code }), true);
    } catch (error) {
      secondFactorFailed(recoveryForm, error);
    }
  });
});

$("#security-key-button").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  const errorLine = $("#security-key-error");
  say(errorLine, "");
  button.disabled = true;
  try {
    const options = await post("/api/auth/login/webauthn/options");
    const credential = await getCredential(options);
    finish(await post("/api/auth/login/webauthn", { credential }));
  } catch (error) {
    if (error instanceof ApiError && error.is("sign-in-expired")) restart("Your sign-in has expired. Please sign in again.");
    else say(errorLine, error instanceof ApiError ? error.userMessage : webauthnMessage(error), "error");
  } finally {
    button.disabled = false;
  }
});

$("#passkey-button").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  const errorLine = $("#passkey-error");
  say(errorLine, "");
  button.disabled = true;
  try {
    const options = await post("/api/auth/login/passkey/options");
    const credential = await getCredential(options);
    finish(await post("/api/auth/login/passkey", { credential }));
  } catch (error) {
    say(errorLine, error instanceof ApiError
      ? (error.status === 401 ? "That passkey couldn't sign you in. Use your email and password instead." : error.userMessage)
      : webauthnMessage(error), "error");
  } finally {
    button.disabled = false;
  }
});

for (const chip of $$("[data-factor]")) chip.addEventListener("click", () => selectFactor(chip.dataset.factor));
$("#restart-signin").addEventListener("click", () => restart());

async function init() {
  show($("#passkey-area"), webauthnSupported());
  if (!readCookie("portal_csrf")) {
    ready(); // no session cookie: nothing to ask the API
    return;
  }
  try {
    const session = await get("/api/auth/session");
    if (session && session.state === "signed_in") {
      goToProfile();
      return;
    }
  } catch {
    // not signed in: stay here
  }
  ready();
}

init();
