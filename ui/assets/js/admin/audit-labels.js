// Plain words for the types of the admin audit log (profile's audit_log); an unknown type shows as itself,
// so a type added to the server later never breaks the timeline.
export const AUDIT_TYPES = {
  signed_in: "Signed in",
  password_accepted: "Password accepted, second factor asked",
  password_failed: "Wrong password",
  second_factor_failed: "Wrong second factor",
  signed_out: "Signed out",
  reauthenticated: "Confirmed it's them (re-authentication)",
  session_revoked: "A session was signed out",
  sessions_revoked: "Other sessions were signed out",
  profile_updated: "Profile updated",
  password_changed: "Password changed",
  password_reset_requested: "Password reset link requested",
  password_reset_throttled: "Password reset request not sent (too many)",
  password_reset: "Password reset with an emailed link",
  user_created: "Account created and invited",
  invitation_resent: "Invitation sent again",
  invitation_accepted: "Invitation accepted",
  user_updated: "Account details changed by an admin",
  impersonation_started: "An admin started viewing the account",
  impersonation_stopped: "An admin stopped viewing the account",
  two_factor_reset: "Two-factor reset by an admin",
  deactivated: "Deactivated",
  reactivated: "Reactivated",
  not_me: "“This wasn't me” used",
  sso_linked: "Single sign-on linked",
  sso_accepted: "Signed in with single sign-on",
  sso_configured: "Single sign-on settings saved",
  sso_removed: "Single sign-on removed",
};

export function auditLabel(type) {
  return AUDIT_TYPES[type] || type.replaceAll("_", " ");
}
