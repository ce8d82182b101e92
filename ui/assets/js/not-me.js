// "This wasn't me" from a security email: end every session and email a reset link.
// Nothing happens until the person confirms (mail scanners open links on their own).
import { ApiError, post } from "./api.js";
import { $, queryParam, ready, show } from "./dom.js";
import { busy, clearErrors, showError } from "./forms.js";

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
        await post("/api/auth/not-me", { token });
        showStep("done-step");
      } catch (error) {
        if (error instanceof ApiError && [400, 401, 404, 409, 410].includes(error.status)) showStep("invalid-step");
        else showError(form, error);
      }
    });
  });
}
ready();
