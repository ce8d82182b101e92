// What every admin console page shares: the top bar, the bar shown while the admin views someone's account,
// the banner asking an admin without two-factor to turn it on and page-level errors (mountConsolePage),
// and the session check (startConsole).
import { ApiError, get, rememberCsrfToken } from "../api.js";
import { $, h, say, show } from "../dom.js";
import { mountPageHead, wireSignedInControls } from "../partials/page-head.js";

const LOGIN = "/portal/login";

export const clientUrl = (id) => `/portal/admin/client?id=${encodeURIComponent(id)}`;
export const userUrl = (id) => `/portal/admin/user?id=${encodeURIComponent(id)}`;

export function toLogin() {
  window.location.replace(LOGIN);
}

/** Any 401 means the session ended: back to sign in. Returns true when it handled the error. */
export function handledSignedOut(error) {
  if (error instanceof ApiError && error.status === 401) {
    toLogin();
    return true;
  }
  return false;
}

export function pageError(error) {
  if (handledSignedOut(error)) return;
  say($("#page-error"), error ? error.userMessage || error.message || String(error) : "", "error");
}

/** A query parameter the page needs (its record's id); a page opened without it says so. */
export function requiredParam(name) {
  const value = new URLSearchParams(window.location.search).get(name) || "";
  if (!value) say($("#page-error"), "This page needs a link from the clients list.", "error");
  return value;
}

/**
 * The console page's shared parts, first thing in its script (before anything says into #page-error):
 * the top bar (`current`: its navigation entry), then at the top of <main> the bar shown while the admin
 * views someone's account, the two-factor banner and the page's error line, all hidden until needed.
 */
export function mountConsolePage({ current = "" } = {}) {
  mountPageHead({ signedIn: true, current, adminConsole: true });
  $("#main").prepend(
    h("div", { id: "viewing-bar", class: "banner banner-warning", role: "status", hidden: true },
      h("p", { id: "viewing-text" }),
      h("button", { type: "button", id: "stop-viewing", class: "button button-secondary button-small" }, "Stop Viewing")),
    h("div", { id: "two-factor-banner", class: "banner banner-warning", hidden: true },
      h("p", {}, "Your admin account has no two-factor authentication. Turn it on to protect your clients' accounts."),
      h("a", { class: "button button-small", href: "/portal/profile#security" }, "Turn On Two-Factor")),
    h("p", { id: "page-error", class: "notice notice-error", role: "alert", hidden: true }));
}

async function twoFactorBanner() {
  try {
    const mfa = await get("/api/mfa");
    show($("#two-factor-banner"), !mfa.two_factor_enabled);
  } catch {
    // The banner is advice: an mfa outage must not break the console.
  }
}

/**
 * Checks the session (an MSP admin, fully signed in) and wires the header. Resolves with the admin
 * ({id, name, email}), or null when the page is going away (sign-in, or not an admin).
 */
export async function startConsole() {
  let session;
  try {
    session = await get("/api/auth/session");
  } catch (error) {
    if (!handledSignedOut(error)) pageError(error);
    return null;
  }
  if (!session || session.state !== "signed_in") {
    toLogin();
    return null;
  }
  rememberCsrfToken(session.csrf_token);
  const viewing = session.impersonator ? session.user : null;
  const admin = session.impersonator || session.user;
  if (!viewing && admin.role !== "msp_admin") {
    window.location.replace("/portal/profile");
    return null;
  }
  wireSignedInControls({ stopViewing: "#stop-viewing", leave: toLogin, onError: pageError });
  if (viewing) {
    // The admin's mfa answers are the viewed account's while viewing: no two-factor banner then.
    $("#viewing-text").replaceChildren(`You are viewing ${viewing.name}'s account (${viewing.email}). `,
      h("a", { href: "/portal/profile" }, "Open their Profile page"), ".");
    show($("#viewing-bar"), true);
  } else {
    await twoFactorBanner();
  }
  return admin;
}

/** The two-factor adoption of `count` users of whom `on` have it: "67% (2 of 3)". */
export function adoption(on, count) {
  if (!count) return "No users yet";
  return `${Math.round((100 * on) / count)}% (${on} of ${count})`;
}
