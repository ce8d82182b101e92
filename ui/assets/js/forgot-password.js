// Forgot password: ask for a reset link (202 whether or not the account exists).
import { post } from "./api.js";
import { $, ready, show } from "./dom.js";
import { busy, clearErrors, showError, showFieldErrors, value } from "./forms.js";
import { mountPage } from "./partials/page.js";

mountPage();
const form = $("#forgot-form");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  const email = value(form, "email").trim();
  if (!email || !email.includes("@")) {
    showFieldErrors(form, { email: ["Enter the email address of your account."] });
    return;
  }
  await busy(form, async () => {
    try {
      await post("/api/auth/password-reset", { email });
      show($("#request-step"), false);
      show($("#sent-step"), true);
      $("#page-title").focus();
    } catch (error) {
      showError(form, error);
    }
  });
});

ready();
