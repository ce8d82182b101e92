// The pages that set a password from an emailed token: reset and invitation.
import { ApiError, post } from "./api.js";
import { $, queryParam, ready, show } from "./dom.js";
import { busy, clearErrors, passwordErrors, showError, showFieldErrors, value } from "./forms.js";
import { mountPage } from "./partials/page.js";

function showStep(name) {
  for (const step of ["form-step", "done-step", "invalid-step"]) show($(`#${step}`), step === name);
  $("#page-title").focus();
}

export function passwordPage({ formId, endpoint }) {
  mountPage();
  const form = $(`#${formId}`);
  const token = queryParam("token");
  if (!token) {
    showStep("invalid-step");
    ready();
    return;
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const errors = passwordErrors(form);
    if (Object.keys(errors).length) {
      showFieldErrors(form, errors);
      return;
    }
    await busy(form, async () => {
      try {
        await post(endpoint, {
          token,
          new_password: value(form, "new_password"),
          confirm_password: value(form, "confirm_password"),
        });
        showStep("done-step");
      } catch (error) {
        if (error instanceof ApiError && error.status === 400 && !Object.keys(error.errors).length) {
          showStep("invalid-step");
        } else {
          showError(form, error);
        }
      }
    });
  });
  ready();
}
