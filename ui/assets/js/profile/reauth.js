// Confirming it's the account's owner before a sensitive change: the password, or for accounts linked to
// their company's sign-in a fresh single sign-on round trip (POST /api/auth/reauth/sso/start; its callback
// marks the session re-authenticated for 10 minutes and brings the person back to the Security tab).
import { ApiError, post } from "../api.js";
import { confirmDialog, passwordDialog } from "../dialogs.js";
import { hasPassword, user } from "./context.js";

export const CANCELLED = Symbol("cancelled");

const TITLE = "Confirm it's you";

export function isReauthRequired(error) {
  return error instanceof ApiError && error.status === 403 && error.is("reauth-required");
}

/** Leaves the page for the company's sign-in; resolves false (the page is going away). */
export async function startSsoReauth() {
  const answer = await post("/api/auth/reauth/sso/start");
  window.location.assign(answer.redirect_url);
  return false;
}

const ssoAlternative = () => (user().sso ? { label: "Continue with your company", run: startSsoReauth } : null);

/** Asks the person to confirm it's them; resolves true once the session counts as re-authenticated. */
export function reauthDialog() {
  if (!hasPassword()) {
    // No password to type: the company's sign-in is the only way to confirm.
    return confirmDialog({
      title: TITLE,
      message: "For your security, sign in with your company again to continue.",
      confirmLabel: "Continue with your company",
    }).then((yes) => (yes ? startSsoReauth() : false));
  }
  return passwordDialog({
    title: TITLE,
    message: "For your security, enter your password to continue.",
    confirmLabel: "Confirm",
    submit: (password) => post("/api/auth/reauth", { password }),
    alternative: ssoAlternative(),
  });
}

/** Runs `action`; on 403 reauth-required asks the person to confirm, then runs it again (CANCELLED if not). */
export async function withReauth(action) {
  try {
    return await action();
  } catch (error) {
    if (!isReauthRequired(error)) throw error;
    if (!(await reauthDialog())) return CANCELLED;
    return action();
  }
}

/** An error for a form's message line when the person closed the re-authentication dialog. */
export function reauthCancelled(message) {
  return Object.assign(new Error(message), { userMessage: message });
}

/**
 * A change the API confirms with `{password}` (disable the app, regenerate codes). The password goes in
 * the body; an account without one is asked `ssoMessage` instead, and the API accepts the body without a
 * password once the session re-authenticated (by single sign-on) in the last 10 minutes: when it has not,
 * the re-authentication dialog takes the person to their company's sign-in first. Resolves with submit's
 * answer, or null when cancelled.
 */
export async function confirmWithPassword({ title, message, ssoMessage, confirmLabel, danger = false, submit }) {
  if (hasPassword()) {
    return passwordDialog({ title, message, confirmLabel, danger, submit, alternative: null });
  }
  const sure = await confirmDialog({ title, message: ssoMessage, confirmLabel, danger });
  if (!sure) return null;
  try {
    return (await submit(undefined)) ?? true;
  } catch (error) {
    const needsPassword = error instanceof ApiError && (isReauthRequired(error) || "password" in error.errors);
    if (!needsPassword) throw error;
    await reauthDialog();
    return null;
  }
}
