// The Security tab's Password section: the Change Password form, or, for an account that signs in with
// single sign-on and has no password, the way to set one (Forgot password emails a reset link).
import { post } from "../api.js";
import { $, say, show } from "../dom.js";
import { busy, clearErrors, passwordErrors, requireFields, showError, showFieldErrors, value } from "../forms.js";
import { handledSignedOut, hasPassword, user } from "./context.js";

/** Shows the form or the single sign-on text, from the session's has_password and sso. */
export function renderPassword() {
  const issuer = user().sso;
  show($("#password-change"), hasPassword());
  show($("#password-sso"), !hasPassword());
  if (!hasPassword()) {
    $("#password-sso-text").textContent = issuer
      ? `Signed in with single sign-on (${issuer}). Your account has no portal password.`
      : "Your account signs in with single sign-on and has no portal password.";
  }
  // The activity section's "This wasn't me?" hint: an account without a password sets one instead.
  $("#activity-change-password").textContent = hasPassword() ? "change your password" : "set a password";
  show($("#sso-also"), hasPassword() && Boolean(issuer));
  if (hasPassword() && issuer) $("#sso-also").textContent = `You can also sign in with single sign-on (${issuer}).`;
}

/** Opens the Change Password form (the activity section's "This wasn't me?" hint points here). */
export function focusPasswordChange() {
  if (!hasPassword()) {
    $("#set-password-link").focus();
    return;
  }
  const form = $("#password-form");
  if (form.hidden) $("#change-password-toggle").click();
  else form.elements.namedItem("current_password").focus();
}

export function setupPasswordForm() {
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
