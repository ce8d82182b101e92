// WebAuthn with the browser's JSON helpers: the API gives bare options (py_webauthn options_to_json),
// the browser parses them, and credential.toJSON() goes back to the API.

export function webauthnSupported() {
  return typeof window.PublicKeyCredential === "function" &&
    typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function" &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function";
}

function bare(options) {
  return options && options.publicKey ? options.publicKey : options;
}

export async function createCredential(options) {
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(bare(options));
  const credential = await navigator.credentials.create({ publicKey });
  return credential.toJSON();
}

export async function getCredential(options) {
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(bare(options));
  const credential = await navigator.credentials.get({ publicKey });
  return credential.toJSON();
}

/** A message for a failed browser prompt. */
export function webauthnMessage(error) {
  if (!error) return "The security key prompt failed.";
  if (error.name === "NotAllowedError") return "The security key prompt was cancelled or timed out.";
  if (error.name === "InvalidStateError") return "This security key is already registered to your account.";
  if (error.name === "SecurityError") return "Security keys can't be used on this address.";
  if (error.name === "NotSupportedError") return "This browser or device doesn't support that kind of security key.";
  return error.userMessage || error.message || "The security key prompt failed.";
}
