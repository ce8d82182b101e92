// A client's single sign-on settings (PUT/DELETE /api/admin/clients/{id}/sso): issuer, client id, the
// write-only secret, email domains, password sign-in allowed, trust the provider's MFA; "Test Sign-In"
// runs discovery at the issuer and shows what it found, saving nothing.
import { ApiError, del, post, api } from "../api.js";
import { confirmDialog } from "../dialogs.js";
import { $, h, say, show } from "../dom.js";
import { busy, clearErrors, showError, showFieldErrors, value } from "../forms.js";
import { handledSignedOut } from "./console.js";
import { CANCELLED, withReauth } from "./reauth.js";

let current = null;

function render(sso) {
  current = sso;
  const form = $("#sso-form");
  $("#sso-summary").textContent = sso
    ? `Users of ${sso.email_domains.join(", ")} sign in with ${sso.issuer}.`
    : "Not set up: users sign in with their portal password.";
  form.elements.namedItem("issuer").value = sso ? sso.issuer : "";
  form.elements.namedItem("client_id").value = sso ? sso.client_id : "";
  form.elements.namedItem("client_secret").value = "";
  form.elements.namedItem("client_secret").placeholder = sso ? "Leave blank to keep the current secret" : "";
  form.elements.namedItem("email_domains").value = sso ? sso.email_domains.join(", ") : "";
  form.elements.namedItem("password_sign_in").checked = !sso || sso.password_sign_in === "allowed";
  form.elements.namedItem("trust_idp_mfa").checked = Boolean(sso && sso.trust_idp_mfa);
  show($("#sso-remove"), Boolean(sso));
}

function body(form) {
  const settings = {
    issuer: value(form, "issuer").trim(),
    client_id: value(form, "client_id").trim(),
    email_domains: value(form, "email_domains").split(/[\s,]+/).filter(Boolean),
    password_sign_in: form.elements.namedItem("password_sign_in").checked ? "allowed" : "disabled",
    trust_idp_mfa: form.elements.namedItem("trust_idp_mfa").checked,
  };
  const secret = value(form, "client_secret");
  if (secret || !current) settings.client_secret = secret;
  return settings;
}

function showDiscovery(found) {
  const box = $("#sso-discovery");
  const row = (label, text) => h("div", {}, h("dt", {}, label), h("dd", { class: "wrap-anywhere" }, text));
  box.replaceChildren(h("p", { class: "strong" }, "Discovery succeeded. The provider answered:"),
    h("dl", { class: "details" },
      row("Issuer", found.issuer), row("Authorization endpoint", found.authorization_endpoint),
      row("Token endpoint", found.token_endpoint), row("Keys (JWKS)", found.jwks_uri),
      row("Signing algorithms", (found.signing_algs || []).join(", "))));
  show(box, true);
}

export function setupSso(clientId, sso) {
  const path = `/api/admin/clients/${encodeURIComponent(clientId)}/sso`;
  const form = $("#sso-form");
  show($("#sso-section"), true);
  render(sso);
  $("#sso-test").addEventListener("click", async (event) => {
    clearErrors(form);
    show($("#sso-discovery"), false);
    const button = event.currentTarget;
    button.disabled = true;
    try {
      showDiscovery(await post("/api/admin/sso/discovery", { issuer: value(form, "issuer").trim() }));
    } catch (error) {
      if (!handledSignedOut(error)) showError(form, error);
    } finally {
      button.disabled = false;
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    say($("#sso-status"), "");
    if (!value(form, "issuer").trim()) {
      showFieldErrors(form, { issuer: ["Enter the provider's issuer URL."] });
      return;
    }
    await busy(form, async () => {
      try {
        const saved = await withReauth(() => api("PUT", path, body(form)));
        if (saved === CANCELLED) return;
        render(saved);
        say($("#sso-status"), "Single sign-on saved.", "success");
      } catch (error) {
        if (!handledSignedOut(error)) showError(form, error);
      }
    });
  });
  $("#sso-remove").addEventListener("click", async () => {
    const sure = await confirmDialog({
      title: "Remove single sign-on?",
      message: "This client's users will sign in with their portal password again (those without one use Forgot password).",
      confirmLabel: "Remove", danger: true,
    });
    if (!sure) return;
    try {
      if ((await withReauth(() => del(path))) === CANCELLED) return;
      render(null);
      say($("#sso-status"), "Single sign-on removed.", "success");
    } catch (error) {
      if (!(error instanceof ApiError && handledSignedOut(error))) showError(form, error);
    }
  });
}
