// A client's users as table rows: name, email, title, two-factor, last sign-in, and where their invitation
// stands (with "Resend Invitation" while it is pending or expired).
import { h, timeEl } from "../dom.js";
import { userUrl } from "./console.js";

export function statusBadge(user) {
  if (!user.active) return h("span", { class: "badge badge-danger" }, "Deactivated");
  const state = user.invitation && user.invitation.state;
  if (state === "pending") return h("span", { class: "badge badge-info" }, "Invitation pending");
  if (state === "expired") return h("span", { class: "badge badge-warn" }, "Invitation expired");
  return h("span", { class: "badge badge-on" }, "Active");
}

export function twoFactorBadge(user) {
  return user.two_factor_enabled ? h("span", { class: "badge badge-on" }, "On") : h("span", { class: "badge badge-off" }, "Off");
}

export function lastSignIn(user) {
  return user.last_sign_in_at ? timeEl(user.last_sign_in_at, true) : h("span", { class: "muted" }, "Never");
}

/** Invitations that can be sent again: not accepted yet, account active. */
export function canResend(user) {
  return user.active && user.invitation && user.invitation.state !== "accepted";
}

export function userRow(user, onResend) {
  const status = h("td", {}, statusBadge(user));
  if (canResend(user)) {
    const resend = h("button", { type: "button", class: "button button-secondary button-small",
      "aria-label": `Resend invitation to ${user.name}` }, "Resend Invitation");
    resend.addEventListener("click", () => onResend(user, resend));
    status.append(" ", resend);
  }
  return h("tr", { "data-user-id": user.id },
    h("th", { scope: "row" }, h("a", { href: userUrl(user.id) }, user.name)),
    h("td", { class: "wrap-anywhere" }, user.email),
    h("td", {}, user.title || ""),
    h("td", {}, twoFactorBadge(user)),
    h("td", {}, lastSignIn(user)),
    status);
}
