// Sign in, email first: the address's domain decides what is offered (POST /api/auth/sign-in-methods:
// password, single sign-on with the company's identity provider, or both); then the second factor
// (authenticator code, security key or recovery code) when the account has one, or a passkey without a
// password. The single sign-on callback comes back here with ?error=sso or ?step=second-factor.
import { ApiError, get, post, readCookie } from "./api.js";
import { $, $$, queryParam, ready, say, show } from "./dom.js";
import { busy, clearErrors, requireFields, showError, showFieldErrors, value } from "./forms.js";
import { mountPage } from "./partials/page.js";
import { getCredential, webauthnMessage, webauthnSupported } from "./webauthn.js";

const PROFILE = "/portal/profile";
const LOW_CODES = 3;
const SSO_FAILED = "Single sign-on didn't work. Try again or contact your administrator.";
const EXPIRED = "Your sign-in has expired. Please sign in again.";

mountPage();
const passwordStep = $("#password-step");
const secondStep = $("#second-factor-step");
const codesStep = $("#codes-warning-step");
const loginForm = $("#login-form");
const totpForm = $("#totp-form");
const recoveryForm = $("#recovery-form");
const emailInput = $("#login-email");

/** The methods offered for the address typed (null on the email step). */
let methods = null;

/**
 * Where to go once signed in: the page that sent the browser here (`?next=`, set by the gateway for a
 * page that needs a session) when it is one of the portal's own paths, else the Profile page. Anything
 * else (another site, "//host", a backslash trick) is ignored: no open redirect.
 */
function afterSignIn() {
  const next = new URLSearchParams(window.location.search).get("next") || "";
  const own = next.startsWith("/portal/") && !next.includes("\\") && !next.includes("//");
  return own ? next : PROFILE;
}

function goToProfile() {
  window.location.assign(afterSignIn());
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

/** The first step: the email alone, with the passkey button. */
function showEmailStep() {
  methods = null;
  emailInput.readOnly = false;
  for (const el of ["#password-field", "#signin-button", "#sso-area", "#change-email-line"]) show($(el), false);
  show($("#continue-button"), true);
  show($("#passkey-area"), webauthnSupported());
  say($("#sso-error"), "");
}

/** The second step: what the address's domain uses (password, single sign-on, or both). */
function showMethods(offered) {
  const password = offered.includes("password") || !offered.includes("sso");
  const sso = offered.includes("sso");
  methods = { password, sso };
  emailInput.readOnly = true;
  show($("#continue-button"), false);
  show($("#password-field"), password);
  show($("#signin-button"), password);
  show($("#sso-area"), sso);
  show($("#sso-divider"), password && sso);
  // The company's button is the main action when it is the only one.
  $("#sso-button").className = password ? "button button-secondary button-block" : "button button-block";
  show($("#change-email-line"), true);
  show($("#passkey-area"), false);
  if (password) $("#login-password").focus();
  else $("#sso-button").focus();
}

function restart(message = "", kind = "warning") {
  loginForm.reset();
  totpForm.reset();
  recoveryForm.reset();
  for (const form of [loginForm, totpForm, recoveryForm]) clearErrors(form);
  history.replaceState(null, "", window.location.pathname); // drop ?step= / ?error=
  showEmailStep();
  show(secondStep, false);
  show(codesStep, false);
  show(passwordStep, true);
  say($("#signin-notice"), message, kind);
  emailInput.focus();
}

/** A failed second-factor attempt: after too many the pending sign-in is void. */
function secondFactorFailed(form, error) {
  if (error instanceof ApiError && error.is("sign-in-expired")) {
    restart(EXPIRED);
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

async function askMethods() {
  const email = value(loginForm, "email").trim();
  if (!email || !email.includes("@")) {
    showFieldErrors(loginForm, { email: ["Enter your email address."] });
    return;
  }
  await busy(loginForm, async () => {
    try {
      const answer = await post("/api/auth/sign-in-methods", { email });
      showMethods(Array.isArray(answer && answer.methods) ? answer.methods : []);
    } catch (error) {
      // A gateway without single sign-on answers 404 here: every address then signs in with a password.
      if (error instanceof ApiError && error.status === 404) showMethods(["password"]);
      else showError(loginForm, error);
    }
  });
}

async function signInWithPassword() {
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
}

loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(loginForm);
  say($("#signin-notice"), "");
  if (!methods) await askMethods();
  else if (methods.password) await signInWithPassword();
  else await startSso();
});

/** Leaves for the company's identity provider (POST /api/auth/sso/start gives its address). */
async function startSso() {
  const button = $("#sso-button");
  say($("#sso-error"), "");
  button.disabled = true;
  try {
    const answer = await post("/api/auth/sso/start", { email: value(loginForm, "email").trim() });
    window.location.assign(answer.redirect_url);
  } catch (error) {
    say($("#sso-error"), error instanceof ApiError && error.status !== 429 ? SSO_FAILED : error.userMessage, "error");
    button.disabled = false;
  }
}

$("#sso-button").addEventListener("click", startSso);
$("#change-email").addEventListener("click", () => {
  clearErrors(loginForm);
  $("#login-password").value = "";
  showEmailStep();
  emailInput.focus();
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
    if (error instanceof ApiError && error.is("sign-in-expired")) restart(EXPIRED);
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

/** ?step=second-factor: the single sign-on callback left a pending sign-in that needs the second factor. */
async function resumeSecondFactor() {
  try {
    const session = readCookie("portal_csrf") ? await get("/api/auth/session") : null;
    if (session && session.state === "signed_in") {
      goToProfile();
      return;
    }
    if (session && session.state === "second_factor_required") {
      showSecondFactor(session.second_factors || []);
      return;
    }
  } catch {
    // no pending sign-in any more
  }
  restart(EXPIRED);
}

async function init() {
  showEmailStep();
  if (queryParam("error") === "sso") say($("#signin-notice"), SSO_FAILED, "error");
  if (queryParam("step") === "second-factor") {
    await resumeSecondFactor();
    ready();
    return;
  }
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
