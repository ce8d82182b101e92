// The rules for a new password, once for every page that sets one. They are the server's own
// (services/profile/profile_service/passwords.py: 8..128 characters after NFKC normalisation; the
// messages of accounts.py's new_password_errors); the server also refuses common passwords and ones made
// of the user's name or address, which only it can check. tests/browser/test_password_rules.py compares.

export const MIN_PASSWORD = 8;
export const MAX_PASSWORD = 128;

/** Length as the server counts it: code points of the NFKC form (not UTF-16 units). */
export function passwordLength(password) {
  return [...password.normalize("NFKC")].length;
}

/** `{field: [message]}` for a new password and its confirmation; empty when both pass the local checks. */
export function newPasswordErrors(password, confirm, newName = "new_password", confirmName = "confirm_password") {
  const errors = {};
  const length = passwordLength(password || "");
  if (!password) errors[newName] = ["Enter a new password."];
  else if (length < MIN_PASSWORD) errors[newName] = [`Use at least ${MIN_PASSWORD} characters.`];
  else if (length > MAX_PASSWORD) errors[newName] = [`Use at most ${MAX_PASSWORD} characters.`];
  if (!confirm) errors[confirmName] = ["Confirm the new password."];
  else if (confirm.normalize("NFKC") !== password.normalize("NFKC")) {
    errors[confirmName] = ["The passwords do not match."];
  }
  return errors;
}
