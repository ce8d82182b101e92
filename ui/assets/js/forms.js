// Inline field errors (from problem+json `errors` or local checks) and a form-level error line.
import { $, say } from "./dom.js";
import { MIN_PASSWORD, newPasswordErrors } from "./password-rules.js";

// Re-exported for the pages (and ui/admin) that import it from here; the rules live in password-rules.js.
export { MIN_PASSWORD };

function errorElementFor(input) {
  const form = input.form || input.closest("form");
  let el = input.id ? document.getElementById(`${input.id}-error`) : null;
  if (!el && form) el = $(`[data-error-for="${input.name}"]`, form);
  return el;
}

export function clearErrors(form) {
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".field-error")) say(el, "");
  const formError = $(".form-error", form);
  if (formError) say(formError, "");
}

/** Shows `{field: [messages]}` next to each field; returns false when no field matched. */
export function showFieldErrors(form, errors) {
  let first = null;
  for (const [name, messages] of Object.entries(errors || {})) {
    const input = form.elements.namedItem(name);
    if (!input || !(input instanceof HTMLElement)) continue;
    const el = errorElementFor(input);
    if (!el) continue;
    say(el, [].concat(messages).join(" "), "error");
    input.setAttribute("aria-invalid", "true");
    first = first || input;
  }
  if (first) first.focus();
  return first !== null;
}

export function showFormError(form, message) {
  const el = $(".form-error", form);
  if (el) say(el, message, "error");
}

/** Shows an ApiError on a form: field errors where they belong, else its message. */
export function showError(form, error) {
  clearErrors(form);
  const errors = error && error.errors ? error.errors : {};
  const placed = showFieldErrors(form, errors);
  const message = error && error.userMessage ? error.userMessage : "Something went wrong. Please try again.";
  const unplaced = Object.keys(errors).some((name) => !form.elements.namedItem(name));
  if (!placed || unplaced) showFormError(form, message);
}

export function value(form, name) {
  const input = form.elements.namedItem(name);
  return input ? input.value : "";
}

/** Local checks for a new password and its confirmation (the server checks again). */
export function passwordErrors(form, newName = "new_password", confirmName = "confirm_password") {
  return newPasswordErrors(value(form, newName), value(form, confirmName), newName, confirmName);
}

export function requireFields(form, labels) {
  const errors = {};
  for (const [name, message] of Object.entries(labels)) {
    if (!value(form, name).trim()) errors[name] = [message];
  }
  return errors;
}

/** Runs `action` with the submit button disabled; returns its result. */
export async function busy(form, action) {
  const buttons = Array.from(form.querySelectorAll("button"));
  for (const button of buttons) button.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    return await action();
  } finally {
    for (const button of buttons) button.disabled = false;
    form.removeAttribute("aria-busy");
  }
}
