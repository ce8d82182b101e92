// The Profile tab and the page header: name, email and avatar, Account Information (read-only, managed by
// the MSP; Title and Mobile only when set), the Edit Profile form, and the administrator-viewing notice.
import { get, patch } from "../api.js";
import { $, h, say, show } from "../dom.js";
import { busy, clearErrors, requireFields, showError, showFieldErrors, value } from "../forms.js";
import { handledSignedOut, state } from "./context.js";

function renderProfile(profile) {
  state.profile = profile;
  $("#profile-name").textContent = profile.name;
  $("#profile-email").textContent = profile.email;
  $("#avatar").textContent = (profile.initial || profile.name || profile.email || "?").charAt(0).toUpperCase();
  document.title = `${profile.name} · Profile · Client Portal`;

  const row = (label, text) => h("div", {}, h("dt", {}, label), h("dd", {}, text));
  $("#account-info").replaceChildren(...[
    row("Company", profile.company ? profile.company.name : ""),
    profile.title ? row("Title", profile.title) : null,
    profile.mobile ? row("Mobile", profile.mobile) : null,
  ].filter(Boolean));

  const form = $("#profile-form");
  form.elements.namedItem("name").value = profile.name || "";
  form.elements.namedItem("email").value = profile.email || "";
  form.elements.namedItem("phone").value = profile.phone || "";

  const impersonator = profile.impersonator || (state.session && state.session.impersonator);
  show($("#impersonation-notice"), Boolean(impersonator));
  if (impersonator) {
    $("#impersonation-text").textContent =
      `You are viewing ${profile.name}'s account as an administrator (${impersonator.name}, ${impersonator.email}). ` +
      "Any changes you make will affect the real account.";
  }
}

export async function loadProfile() {
  renderProfile(await get("/api/profile"));
}

export function setupProfileForm() {
  const form = $("#profile-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    say($("#profile-saved"), "");
    const errors = requireFields(form, { name: "Enter your name." });
    if (Object.keys(errors).length) {
      showFieldErrors(form, errors);
      return;
    }
    const phone = value(form, "phone").trim();
    await busy(form, async () => {
      try {
        renderProfile(await patch("/api/profile", { name: value(form, "name").trim(), phone: phone || null }));
        say($("#profile-saved"), "Your profile has been updated.", "success");
      } catch (error) {
        if (!handledSignedOut(error)) showError(form, error);
      }
    });
  });
}
