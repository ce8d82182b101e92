// Plain words for the entries of GET /api/auth/activity: `type` is `sign_in` (detail.method, .second_factor),
// `sign_in_failed` (detail.count, first_at, last_at when a burst was collapsed into one entry),
// `session_revoked` / `sessions_revoked`, or the type of the event the
// change emitted (their data: shared/portal_shared/events/contracts.py). Unknown types
// get a generic label: a type added to the server later must never break the list.
import { formatDateTime } from "../dom.js";

// detail.method: how the first step was done; detail.second_factor: the second step, when there was one.
const SIGN_IN_METHODS = { password: "your password", passkey: "a passkey", sso: "single sign-on" };
const SECOND_FACTORS = {
  totp: "an authenticator app", webauthn: "a security key", security_key: "a security key",
  recovery_code: "a recovery code",
};

function signedIn(d) {
  const first = SIGN_IN_METHODS[d.method];
  const second = SECOND_FACTORS[d.second_factor];
  const title = !first ? "Signed in" : second ? `Signed in with ${first} and ${second}` : `Signed in with ${first}`;
  return { title, detail: d.new_device === true ? "From a browser new to your account" : "" };
}

const FACTOR_METHODS = { totp: "With an authenticator app", webauthn: "With a security key" };

const text = (value) => (typeof value === "string" && value.trim() ? value.trim() : "");
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** Each returns {title, detail?} for an entry's `detail` object. */
const LABELS = {
  sign_in: signedIn,
  sign_in_failed: (d) => {
    const count = Number.isInteger(d.count) && d.count > 1 ? d.count : 1;
    const from = formatDateTime(d.first_at);
    const to = formatDateTime(d.last_at);
    return {
      title: count > 1 ? `${count} failed sign-in attempts` : "Failed sign-in attempt",
      detail: count > 1 && from && to ? `Between ${from} and ${to}` : "",
    };
  },
  "profile.password_changed": (d) => ({ title: d.method === "reset" ? "Password reset with an emailed link" : "Password changed" }),
  "profile.password_reset_requested": () => ({ title: "Password reset link requested" }),
  "profile.email_changed": (d) => ({
    title: "Sign-in email address changed",
    detail: text(d.old_email) && text(d.new_email) ? `From ${d.old_email} to ${d.new_email}` : "",
  }),
  "profile.impersonation_started": (d) => ({
    title: "An MSP admin viewed your account",
    detail: [text(d.admin_name), text(d.reason) ? `Reason: ${text(d.reason)}` : ""].filter(Boolean).join(" · "),
  }),
  impersonation_stopped: (d) => ({ title: "An MSP admin stopped viewing your account", detail: text(d.admin_name) }),
  "profile.new_device_sign_in": () => ({ title: "Sign-in from a new device" }),
  "profile.sso_linked": (d) => ({ title: "Single sign-on linked to your account", detail: text(d.issuer) }),
  "profile.change_undone": (d) => {
    const undone = d.undone_type !== "profile.change_undone" && LABELS[d.undone_type];
    return { title: "A change was undone (“This wasn't me”)", detail: undone ? `Undone: ${undone({}).title}` : "" };
  },
  sessions_revoked: () => ({ title: "Other sessions signed out" }),
  session_revoked: () => ({ title: "A session was signed out" }),
  "mfa.two_factor_enabled": (d) => ({
    title: "Two-factor authentication turned on",
    detail: [FACTOR_METHODS[d.method] || "", text(d.name) ? `“${text(d.name)}”` : ""].filter(Boolean).join(" "),
  }),
  "mfa.two_factor_disabled": () => ({ title: "Two-factor authentication turned off" }),
  "mfa.totp_enabled": () => ({ title: "Authenticator app added" }),
  "mfa.totp_disabled": () => ({ title: "Authenticator app removed" }),
  "mfa.security_key_added": (d) => ({ title: "Security key added", detail: text(d.name) ? `“${text(d.name)}”` : "" }),
  "mfa.security_key_removed": (d) => ({ title: "Security key removed", detail: text(d.name) ? `“${text(d.name)}”` : "" }),
  "mfa.security_key_renamed": (d) => ({ title: "Security key renamed", detail: text(d.name) ? `Now “${text(d.name)}”` : "" }),
  "mfa.recovery_codes_regenerated": () => ({ title: "Recovery codes regenerated" }),
  "mfa.recovery_code_used": (d) => ({
    title: "Recovery code used",
    detail: Number.isInteger(d.remaining) ? `${plural(d.remaining, "code")} left` : "",
  }),
  "mfa.reset_by_admin": () => ({ title: "Two-factor authentication reset by your MSP" }),
};

const GENERIC = { title: "Other account activity", detail: "" };

/** {title, detail} for one activity entry; never throws (unknown or odd entries get the generic label). */
export function describeActivity(item) {
  try {
    const label = LABELS[item && item.type];
    if (!label) return GENERIC;
    const detail = item.detail && typeof item.detail === "object" ? item.detail : {};
    const described = label(detail);
    return { title: described.title, detail: described.detail || "" };
  } catch {
    return GENERIC;
  }
}
