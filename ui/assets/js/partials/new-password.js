// The "New Password" / "Confirm New Password" block of every form that sets a password (profile's
// Change Password, reset, invitation). A page marks where it goes with
// <div data-partial="new-password"></div>; the hint and the input limits come from password-rules.js,
// the one source of the rules, so the block and the checks cannot drift apart.
import { h } from "../dom.js";
import { MIN_PASSWORD } from "../password-rules.js";

function field({ id, name, label, hint }) {
  const described = [hint ? `${id}-hint` : "", `${id}-error`].filter(Boolean).join(" ");
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null,
    h("input", {
      id, name, type: "password", autocomplete: "new-password", required: true, "aria-describedby": described,
      // No maxlength: a pasted longer password would be cut silently; the check says "at most" instead.
      minlength: name === "new_password" ? MIN_PASSWORD : null,
    }),
    h("p", { class: "field-error", id: `${id}-error`, hidden: true }));
}

/** Replaces each `[data-partial="new-password"]` placeholder under `root` with the two fields. */
export function mountNewPasswordFields(root = document) {
  for (const slot of root.querySelectorAll('[data-partial="new-password"]')) {
    slot.replaceWith(
      field({ id: "new-password", name: "new_password", label: "New Password",
        hint: `Minimum ${MIN_PASSWORD} characters.` }),
      field({ id: "confirm-password", name: "confirm_password", label: "Confirm New Password" }));
  }
}
