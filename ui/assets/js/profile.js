// The Profile page: Profile and Security tabs (see PRODUCT.md for the wording).
import { ApiError, del, get, patch, post, rememberCsrfToken } from "./api.js";
import { confirmDialog, formDialog, passwordDialog, recoveryCodesDialog } from "./dialogs.js";
import { $, $$, TRASH_ICON, base64FromText, clear, h, icon, ready, say, show, timeEl } from "./dom.js";
import { busy, clearErrors, passwordErrors, requireFields, showError, showFieldErrors, value } from "./forms.js";
import { createCredential, webauthnMessage, webauthnSupported } from "./webauthn.js";

const LOGIN = "/portal/login";
const state = { session: null, profile: null, mfa: null };

function toLogin() {
  window.location.replace(LOGIN);
}

/** Any 401 means the session ended: go back to sign in. Returns true when it handled the error. */
function handledSignedOut(error) {
  if (error instanceof ApiError && error.status === 401) {
    toLogin();
    return true;
  }
  return false;
}

function pageError(error) {
  if (handledSignedOut(error)) return;
  say($("#page-error"), error.userMessage || String(error), "error");
}

// ---------- tabs ----------

const tabs = () => $$('[role="tab"]');

function selectTab(tab, { focus = false, updateHash = true } = {}) {
  for (const other of tabs()) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    show(document.getElementById(other.getAttribute("aria-controls")), selected);
  }
  if (focus) tab.focus();
  if (updateHash) {
    const hash = tab.id === "tab-security" ? "#security" : "#profile";
    history.replaceState(null, "", `${window.location.pathname}${window.location.search}${hash}`);
  }
}

function setupTabs() {
  for (const tab of tabs()) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const list = tabs();
      const index = list.indexOf(tab);
      let next = null;
      if (event.key === "ArrowRight") next = list[(index + 1) % list.length];
      else if (event.key === "ArrowLeft") next = list[(index - 1 + list.length) % list.length];
      else if (event.key === "Home") next = list[0];
      else if (event.key === "End") next = list[list.length - 1];
      if (next) {
        event.preventDefault();
        selectTab(next, { focus: true });
      }
    });
  }
  const initial = window.location.hash === "#security" ? $("#tab-security") : $("#tab-profile");
  selectTab(initial, { updateHash: false });
}

// ---------- profile ----------

function renderProfile(profile) {
  state.profile = profile;
  $("#profile-name").textContent = profile.name;
  $("#profile-email").textContent = profile.email;
  $("#avatar").textContent = (profile.initial || profile.name || profile.email || "?").charAt(0).toUpperCase();
  document.title = `${profile.name} · Profile · Client Portal`;

  // Title and Mobile are in the page only when set.
  const row = (label, text) => h("div", {}, h("dt", {}, label), h("dd", {}, text));
  $("#account-info").replaceChildren(...[
    row("Company", profile.company ? profile.company.name : ""),
    profile.title ? row("Title", profile.title) : null,
    profile.mobile ? row("Mobile", profile.mobile) : null,
  ].filter(Boolean));

  const form = $("#profile-form");
  form.elements.namedItem("name").value = profile.name || "";
  form.elements.namedItem("email").value = profile.email || "";
  form.elements.namedItem("phone").value = profile.phone || "";

  const impersonator = profile.impersonator || (state.session && state.session.impersonator);
  show($("#impersonation-notice"), Boolean(impersonator));
  if (impersonator) {
    $("#impersonation-text").textContent =
      `You are viewing ${profile.name}'s account as an administrator (${impersonator.name}, ${impersonator.email}). ` +
      "Any changes you make will affect the real account.";
  }
}

async function loadProfile() {
  renderProfile(await get("/api/profile"));
}

function setupProfileForm() {
  const form = $("#profile-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    say($("#profile-saved"), "");
    const errors = requireFields(form, { name: "Enter your name." });
    if (Object.keys(errors).length) {
      showFieldErrors(form, errors);
      return;
    }
    const phone = value(form, "phone").trim();
    await busy(form, async () => {
      try {
        renderProfile(await patch("/api/profile", { name: value(form, "name").trim(), phone: phone || null }));
        say($("#profile-saved"), "Your profile has been updated.", "success");
      } catch (error) {
        if (!handledSignedOut(error)) showError(form, error);
      }
    });
  });
}

// ---------- password ----------

function setupPasswordForm() {
  const toggle = $("#change-password-toggle");
  const form = $("#password-form");
  const open = (visible) => {
    show(form, visible);
    toggle.setAttribute("aria-expanded", String(visible));
    if (visible) {
      say($("#password-changed"), "");
      form.elements.namedItem("current_password").focus();
    } else {
      form.reset();
      clearErrors(form);
    }
  };
  toggle.addEventListener("click", () => open(form.hidden));
  $("#password-cancel").addEventListener("click", () => {
    open(false);
    toggle.focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const errors = {
      ...requireFields(form, { current_password: "Enter your current password." }),
      ...passwordErrors(form),
    };
    if (Object.keys(errors).length) {
      showFieldErrors(form, errors);
      return;
    }
    await busy(form, async () => {
      try {
        await post("/api/profile/password", {
          current_password: value(form, "current_password"),
          new_password: value(form, "new_password"),
          confirm_password: value(form, "confirm_password"),
        });
        open(false);
        say($("#password-changed"), "Your password has been changed.", "success");
        toggle.focus();
      } catch (error) {
        if (!handledSignedOut(error)) showError(form, error);
      }
    });
  });
}

// ---------- two-factor ----------

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

async function loadMfa() {
  renderMfa(await get("/api/mfa"));
}

async function reloadMfa() {
  try {
    await loadMfa();
  } catch (error) {
    mfaError(error);
  }
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
      // Adding a factor needs a recent sign-in: withReauth asks for the password, then carries on.
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
    const done = await passwordDialog({
      title: "Disable authenticator app",
      message: "Enter your password to turn off the authenticator app for your account.",
      confirmLabel: "Disable",
      danger: true,
      submit: (password) => post("/api/mfa/totp/disable", { password }),
    });
    if (done) {
      await reloadMfa();
      $("#totp-enable").focus();
    }
  });
}

const CANCELLED = Symbol("cancelled");

/** Runs `action`; on 403 reauth-required asks for the password, then runs it again (CANCELLED if not). */
async function withReauth(action) {
  try {
    return await action();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 403 && error.is("reauth-required"))) throw error;
    const confirmed = await passwordDialog({
      title: "Confirm it's you",
      message: "For your security, enter your password to continue.",
      confirmLabel: "Confirm",
      submit: (password) => post("/api/auth/reauth", { password }),
    });
    if (!confirmed) return CANCELLED;
    return action();
  }
}

/** An error for a form's message line when the user closed the re-authentication dialog. */
function reauthCancelled(message) {
  return Object.assign(new Error(message), { userMessage: message });
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
    const answer = await passwordDialog({
      title: "Regenerate recovery codes",
      message: "Generating new codes invalidates all existing codes. Enter your password to continue.",
      confirmLabel: "Regenerate",
      submit: (password) => post("/api/mfa/recovery-codes/regenerate", { password }),
    });
    if (answer && answer.recovery_codes) {
      await showCodes(answer.recovery_codes);
      await reloadMfa();
      $("#recovery-regenerate").focus();
    }
  });
}

// ---------- sessions ----------

function describeAgent(agent) {
  if (!agent) return "Unknown device";
  const browser = /Edg\//.test(agent) ? "Edge" : /Firefox\//.test(agent) ? "Firefox"
    : /Chrom(e|ium)\//.test(agent) ? "Chrome" : /Safari\//.test(agent) ? "Safari" : "Browser";
  const system = /Windows/.test(agent) ? "Windows" : /Android/.test(agent) ? "Android"
    : /iPhone|iPad/.test(agent) ? "iOS" : /Mac OS X/.test(agent) ? "macOS" : /Linux/.test(agent) ? "Linux" : "";
  return system ? `${browser} on ${system}` : browser;
}

function sessionItem(session) {
  const label = describeAgent(session.user_agent);
  const meta = [h("span", {}, "Signed in ", timeEl(session.created_at, true))];
  if (session.last_seen_at) meta.push(h("span", {}, "Last active ", timeEl(session.last_seen_at, true)));
  if (session.ip) meta.push(h("span", {}, `IP ${session.ip}`));
  let action = null;
  if (!session.current) {
    action = h("button", { type: "button", class: "button button-secondary button-small",
      "aria-label": `Revoke session: ${label}` }, "Revoke");
    action.addEventListener("click", async () => {
      action.disabled = true;
      try {
        await del(`/api/auth/sessions/${encodeURIComponent(session.id)}`);
        say($("#sessions-status"), `Session revoked: ${label}.`);
        await loadSessions();
        $("#sessions-title").focus();
      } catch (error) {
        action.disabled = false;
        pageError(error);
      }
    });
  }
  return h("li", { class: "item", "data-session-id": session.id },
    h("div", { class: "item-main" },
      h("p", { class: "item-title", title: session.user_agent || "" }, label,
        session.current ? h("span", { class: "badge badge-on" }, "This device") : null),
      h("p", { class: "item-meta muted" }, meta)),
    action);
}

async function loadSessions() {
  const sessions = await get("/api/auth/sessions");
  const list = clear($("#sessions-list"));
  for (const session of sessions || []) list.append(sessionItem(session));
  show($("#revoke-others"), (sessions || []).some((s) => !s.current));
}

function setupSessions() {
  $("#sessions-title").tabIndex = -1;
  $("#revoke-others").addEventListener("click", async (event) => {
    const sure = await confirmDialog({
      title: "Sign out other sessions?",
      message: "Every other browser and device signed in to your account will be signed out.",
      confirmLabel: "Sign Out Others",
      danger: true,
    });
    if (!sure) return;
    try {
      await del("/api/auth/sessions");
      say($("#sessions-status"), "Signed out of every other session.");
      await loadSessions();
      $("#sessions-title").focus();
    } catch (error) {
      pageError(error);
      event.target.focus();
    }
  });
}

// ---------- page ----------

function setupHeader() {
  $("#sign-out").addEventListener("click", async () => {
    try {
      await post("/api/auth/logout");
    } catch {
      // signed out either way
    }
    toLogin();
  });
  $("#stop-impersonation").addEventListener("click", async () => {
    try {
      await post("/api/admin/impersonation/stop");
      window.location.reload();
    } catch (error) {
      pageError(error);
    }
  });
}

async function init() {
  try {
    state.session = await get("/api/auth/session");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) toLogin();
    else pageError(error);
    return;
  }
  if (!state.session || state.session.state !== "signed_in") {
    toLogin();
    return;
  }
  rememberCsrfToken(state.session.csrf_token);
  setupTabs();
  setupHeader();
  setupProfileForm();
  setupPasswordForm();
  setupTotp();
  setupKeys();
  setupRecoveryCodes();
  setupSessions();
  const results = await Promise.allSettled([loadProfile(), loadMfa(), loadSessions()]);
  for (const result of results) if (result.status === "rejected") pageError(result.reason);
  $("#main").removeAttribute("aria-busy");
  ready();
}

init();
