// What the Profile page's sections share: the loaded session, profile and two-factor state, and how a
// section reacts when the session has ended.
import { ApiError } from "../api.js";
import { $, say } from "../dom.js";

const LOGIN = "/portal/login";

/** session: GET /api/auth/session; profile: GET /api/profile; mfa: GET /api/mfa. */
export const state = { session: null, profile: null, mfa: null };

/** The signed-in user from the session answer (has_password and sso come from there). */
export const user = () => (state.session && state.session.user) || {};

/** False only when the server says so: an account without a password signs in with single sign-on. */
export const hasPassword = () => user().has_password !== false;

/**
 * To the sign-in page, which brings the browser back here (this tab included) once signed in. The plain
 * Profile page is where a sign-in lands anyway: it needs no `next`.
 */
export function toLogin() {
  const here = window.location.pathname + window.location.search;
  const plain = here === "/portal/profile" || here === "/portal/profile/";
  window.location.replace(plain ? LOGIN : `${LOGIN}?next=${encodeURIComponent(here)}`);
}

/** Any 401 means the session ended: go back to sign in. Returns true when it handled the error. */
export function handledSignedOut(error) {
  if (error instanceof ApiError && error.status === 401) {
    toLogin();
    return true;
  }
  return false;
}

export function pageError(error) {
  if (handledSignedOut(error)) return;
  say($("#page-error"), error.userMessage || String(error), "error");
}
