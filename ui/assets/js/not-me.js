// "This wasn't me" from a security email: undo the change it reported, end every session, email a reset link.
// Nothing happens until the person confirms (mail scanners open links on their own).
import { ApiError, apiResponse } from "./api.js";
import { $, queryParam, ready, show } from "./dom.js";
import { busy, clearErrors, showError } from "./forms.js";
import { mountPage } from "./partials/page.js";

mountPage();

function showStep(name) {
  for (const step of ["form-step", "done-step", "invalid-step"]) show($(`#${step}`), step === name);
  $("#page-title").focus();
}

const form = $("#not-me-form");
const token = queryParam("token");

if (!token) {
  showStep("invalid-step");
} else {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    await busy(form, async () => {
      try {
        const { headers } = await apiResponse("POST", "/api/auth/not-me", { token });
        // The undo removed the account's last second factor: say so (the email says it too).
        show($("#two-factor-off"), headers.get("X-Portal-Two-Factor") === "off");
        showStep("done-step");
      } catch (error) {
        if (error instanceof ApiError && [400, 401, 404, 409, 410].includes(error.status)) showStep("invalid-step");
        else showError(form, error);
      }
    });
  });
}
ready();
