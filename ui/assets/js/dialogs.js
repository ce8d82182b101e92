// Modal dialogs on <dialog>: focus moves into the dialog and back to the opener when it closes.
import { h, say } from "./dom.js";
import { clearErrors, showError } from "./forms.js";

let counter = 0;

function openDialog({ title, description, body, actions, onCancel, labelledBy }) {
  const id = `dialog-${++counter}`;
  const opener = document.activeElement;
  const heading = h("h2", { id: `${id}-title`, class: "dialog-title" }, title);
  const text = description ? h("p", { id: `${id}-desc`, class: "dialog-text" }, description) : null;
  const dialog = h("dialog", {
    class: "dialog",
    "aria-labelledby": labelledBy || `${id}-title`,
    "aria-describedby": text ? `${id}-desc` : null,
  }, heading, text, body, actions ? h("div", { class: "dialog-actions" }, actions) : null);
  document.body.append(dialog);
  dialog.addEventListener("cancel", (event) => {
    if (onCancel === false) event.preventDefault();
  });
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (opener && typeof opener.focus === "function" && document.contains(opener)) opener.focus();
  });
  dialog.showModal();
  return dialog;
}

/** Yes/no question; resolves true when confirmed. */
export function confirmDialog({ title, message, confirmLabel = "Confirm", cancelLabel = "Cancel", danger = false }) {
  return new Promise((resolve) => {
    let answer = false;
    const cancel = h("button", { type: "button", class: "button button-secondary" }, cancelLabel);
    const confirm = h("button", { type: "button", class: danger ? "button button-danger" : "button" }, confirmLabel);
    const dialog = openDialog({ title, description: message, actions: [cancel, confirm] });
    cancel.addEventListener("click", () => dialog.close());
    confirm.addEventListener("click", () => {
      answer = true;
      dialog.close();
    });
    dialog.addEventListener("close", () => resolve(answer));
    cancel.focus();
  });
}

/**
 * A one-field form in a dialog. `submit(value)` runs while the dialog stays open; an ApiError it throws
 * is shown inline (field errors on `name`), and success closes the dialog. Resolves with submit's
 * result, or null when cancelled.
 */
export function formDialog({ title, message, label, name, type = "text", autocomplete = "off", value = "",
  confirmLabel = "Continue", hint = "", required = "This field is required.", submit, danger = false,
  alternative = null }) {
  return new Promise((resolve) => {
    let result = null;
    const fieldId = `field-${++counter}`;
    const input = h("input", {
      id: fieldId, name, type, autocomplete, value, required: true,
      "aria-describedby": [hint ? `${fieldId}-hint` : "", `${fieldId}-error`].filter(Boolean).join(" "),
    });
    const cancel = h("button", { type: "button", class: "button button-secondary" }, "Cancel");
    const confirm = h("button", { type: "submit", class: danger ? "button button-danger" : "button" }, confirmLabel);
    const form = h("form", { class: "dialog-form", novalidate: true },
      h("div", { class: "field" },
        h("label", { for: fieldId }, label),
        hint ? h("p", { class: "hint", id: `${fieldId}-hint` }, hint) : null,
        input,
        h("p", { class: "field-error", id: `${fieldId}-error`, hidden: true })),
      h("p", { class: "form-error", role: "alert", hidden: true }),
      h("div", { class: "dialog-actions" }, cancel, confirm),
      alternativeBlock(alternative, () => form));
    const dialog = openDialog({ title, description: message, body: form });
    cancel.addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      if (!input.value.trim()) {
        say(form.querySelector(".field-error"), required, "error");
        input.setAttribute("aria-invalid", "true");
        input.focus();
        return;
      }
      confirm.disabled = true;
      try {
        result = await submit(input.value);
        if (result === undefined || result === null) result = true;
        dialog.close();
      } catch (error) {
        showError(form, error);
        if (!(error.errors && error.errors[name])) input.focus();
      } finally {
        confirm.disabled = false;
      }
    });
    dialog.addEventListener("close", () => resolve(result));
    input.focus();
    if (value) input.select();
  });
}

/**
 * `alternative` ({label, run}): another way to answer the dialog than its field, e.g. "Continue with your
 * company" in place of a password; `run()` usually leaves the page, and an ApiError it throws is shown.
 */
function alternativeBlock(alternative, form) {
  if (!alternative) return null;
  const button = h("button", { type: "button", class: "button button-secondary button-block" }, alternative.label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await alternative.run();
    } catch (error) {
      showError(form(), error);
    } finally {
      button.disabled = false;
    }
  });
  return h("div", { class: "dialog-alternative" }, h("p", { class: "divider" }, h("span", {}, "or")), button);
}

export function passwordDialog({ title, message, confirmLabel = "Confirm", submit, danger = false, alternative = null }) {
  return formDialog({
    title, message, confirmLabel, submit, danger, alternative, label: "Password", name: "password", type: "password",
    autocomplete: "current-password", required: "Enter your password.",
  });
}

/** The new recovery codes, shown once; only "I've Saved These" closes it. */
export function recoveryCodesDialog(codes) {
  return new Promise((resolve) => {
    const list = h("ul", { class: "recovery-codes", "aria-label": "Recovery codes" },
      codes.map((code) => h("li", {}, h("code", {}, code))));
    const status = h("p", { class: "status-line", role: "status", hidden: true });
    const copy = h("button", { type: "button", class: "button button-secondary" }, "Copy Codes");
    const done = h("button", { type: "button", class: "button" }, "I've Saved These");
    const dialog = openDialog({
      title: "Save your recovery codes",
      description: "Each code can be used once to sign in if you lose access to your authenticator app or " +
        "security key. They are shown only now: store them somewhere safe and offline.",
      body: h("div", {}, list, status),
      actions: [copy, done],
      onCancel: false,
    });
    dialog.classList.add("dialog-codes");
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(codes.join("\n"));
        say(status, "Codes copied to the clipboard.");
      } catch {
        const range = document.createRange();
        range.selectNodeContents(list);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        say(status, "Copy was blocked by the browser: the codes are selected, press Ctrl+C (or ⌘C) to copy.");
      }
    });
    done.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => resolve());
    copy.focus();
  });
}
