// The admin console's user page (/portal/admin/user?id=): the MSP-managed fields and the sign-in address,
// resend invitation, view as this user, reset two-factor, deactivate/reactivate, and the audit timeline.
import { get, patch, post } from "../api.js";
import { confirmDialog, formDialog } from "../dialogs.js";
import { $, clear, formatDateTime, h, ready, say, show, timeEl } from "../dom.js";
import { busy, clearErrors, requireFields, showError, showFieldErrors, value } from "../forms.js";
import { AUDIT_TYPES, auditLabel } from "./audit-labels.js";
import { clientUrl, handledSignedOut, mountConsolePage, pageError, requiredParam, startConsole } from "./console.js";
import { pageUrl, pager } from "./pager.js";
import { CANCELLED, withReauth } from "./reauth.js";
import { canResend, lastSignIn, statusBadge, twoFactorBadge } from "./users-table.js";

mountConsolePage();

const AUDIT_PAGE = 20;
const FIELDS = ["name", "email", "title", "mobile", "phone"];
const userId = requiredParam("id");
const path = `/api/admin/users/${encodeURIComponent(userId)}`;
let user = null;

function invitationText(u) {
  const invitation = u.invitation || {};
  if (invitation.state === "accepted") return "Accepted";
  const until = formatDateTime(invitation.expires_at);
  if (invitation.state === "pending") return until ? `Pending, the link works until ${until}` : "Pending";
  return until ? `Expired ${until}` : "No usable link: send the invitation again";
}

function render(u) {
  user = u;
  document.title = `${u.name} · MSP Admin · Client Portal`;
  $("#user-name").textContent = u.name;
  $("#user-email").textContent = u.email;
  $("#user-badges").replaceChildren(statusBadge(u), " ", h("span", { class: "badge badge-off" },
    u.role === "msp_admin" ? "MSP admin" : "Client user"), " ", h("span", {}, "Two-factor "), twoFactorBadge(u));
  const back = $("#back-link");
  back.href = u.client ? clientUrl(u.client.id) : "/portal/admin/";
  back.textContent = u.client ? `← ${u.client.name}` : "← Clients";
  const row = (label, content) => h("div", {}, h("dt", {}, label), h("dd", {}, content));
  $("#account-details").replaceChildren(...[
    u.client ? row("Company", u.client.name) : null,
    row("Status", u.active ? "Active" : "Deactivated: cannot sign in"),
    row("Two-factor", u.two_factor_enabled ? "On" : "Off"),
    row("Last sign-in", lastSignIn(u)),
    row("Invitation", invitationText(u)),
    row("Created", timeEl(u.created_at)),
  ].filter(Boolean));
  show($("#resend-invitation"), canResend(u));
  const form = $("#edit-form");
  for (const name of FIELDS) form.elements.namedItem(name).value = u[name] || "";
  // Admins cannot view, reset or deactivate an admin (operators do, with portal-admin).
  const isAdmin = u.role === "msp_admin";
  show($("#action-list"), !isAdmin);
  show($("#admin-note"), isAdmin);
  show($("#deactivate"), u.active);
  show($("#reactivate"), !u.active);
  $("#active-title").textContent = u.active ? "Deactivate" : "Reactivate";
  $("#active-text").textContent = u.active
    ? "For someone who left the client: every session ends at once and no sign-in, password reset or invitation works until reactivated."
    : "Gives the account back as it was: the same password and two-factor.";
  $("#view-as").disabled = !u.active;
}

async function load() {
  render(await get(path));
}

function done(message) {
  say($("#actions-status"), message, "success");
}

/** Runs a support action; `message` is said when it succeeds. */
async function act(button, action, message) {
  say($("#actions-status"), "");
  say($("#page-error"), "");
  button.disabled = true;
  try {
    if ((await withReauth(action)) === CANCELLED) return;
    await load();
    done(message);
  } catch (error) {
    pageError(error);
  } finally {
    button.disabled = false;
  }
}

function setupEdit() {
  const form = $("#edit-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    say($("#edit-status"), "");
    const errors = requireFields(form, { name: "Enter the user's name.", email: "Enter the sign-in email address." });
    if (Object.keys(errors).length) {
      showFieldErrors(form, errors);
      return;
    }
    const changes = {};
    for (const name of FIELDS) {
      const required = name === "name" || name === "email";
      const next = value(form, name).trim() || (required ? "" : null);  // an emptied optional field is cleared
      if (next !== (user[name] ?? null)) changes[name] = next;
    }
    if (!Object.keys(changes).length) {
      say($("#edit-status"), "Nothing to save: no field changed.", "info");
      return;
    }
    if ("email" in changes) {
      const sure = await confirmDialog({
        title: "Change the sign-in address?",
        message: `${user.name} will sign in with ${changes.email}. Both ${user.email} and ${changes.email} are ` +
          `emailed about the change, and the old address can undo it.`,
        confirmLabel: "Change Address",
      });
      if (!sure) return;
    }
    await busy(form, async () => {
      try {
        const saved = await withReauth(() => patch(path, changes));
        if (saved === CANCELLED) return;
        await load();
        say($("#edit-status"), "email" in changes
          ? `Saved. ${changes.email} is the sign-in address now; both addresses were told.` : "Saved.", "success");
      } catch (error) {
        if (!handledSignedOut(error)) showError(form, error);
      }
    });
  });
}

function setupActions() {
  $("#resend-invitation").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      await post(`${path}/invitation`);
      await load();
      say($("#invitation-status"), `A new invitation was sent to ${user.email}. The earlier link no longer works.`);
      await audit.reset();
    } catch (error) {
      pageError(error);
    } finally {
      button.disabled = false;
    }
  });
  $("#view-as").addEventListener("click", async () => {
    say($("#actions-status"), "");
    const started = await formDialog({
      title: `View as ${user.name}`,
      message: `${user.name} is emailed that you viewed their account, and why. Changes you make there affect the real account.`,
      label: "Reason", name: "reason", hint: "For example the support ticket you are working on.",
      required: "Give the reason for viewing this account.", confirmLabel: "View Account",
      submit: async (reason) => {
        const answer = await withReauth(() => post(`${path}/impersonate`, { reason: reason.trim() }));
        if (answer === CANCELLED) {
          const message = "Confirm it's you to view the account.";
          throw Object.assign(new Error(message), { userMessage: message });
        }
        return answer;
      },
    });
    if (started) window.location.assign("/portal/profile");
  });
  $("#reset-two-factor").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    const sure = await confirmDialog({
      title: `Reset two-factor for ${user.name}?`,
      message: `This removes ${user.name}'s authenticator app, every security key and passkey, and all their ` +
        "recovery codes. They are emailed, every session of their account ends, and they sign in with their " +
        "password alone until they set up two-factor again.",
      confirmLabel: "Reset Two-Factor", danger: true,
    });
    if (!sure) return;
    await act(button, () => post(`${path}/mfa/reset`),
      `Two-factor reset: ${user.name}'s factors and recovery codes were removed, and they were emailed.`);
    await audit.reset();
  });
  $("#deactivate").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    const sure = await confirmDialog({
      title: `Deactivate ${user.name}?`,
      message: `${user.name} is signed out everywhere at once and cannot sign in, reset their password or ` +
        "accept an invitation until an admin reactivates the account. Nothing else changes.",
      confirmLabel: "Deactivate", danger: true,
    });
    if (!sure) return;
    await act(button, () => post(`${path}/deactivate`), `${user.name} is deactivated.`);
    await audit.reset();
    $("#reactivate").focus();
  });
  $("#reactivate").addEventListener("click", async (event) => {
    await act(event.currentTarget, () => post(`${path}/reactivate`),
      `${user.name} is active again, with the same password and two-factor.`);
    await audit.reset();
    $("#deactivate").focus();
  });
}

let auditType = "";

function auditItem(entry) {
  return h("li", { class: "timeline-item" },
    h("p", { class: "item-title" }, auditLabel(entry.type)),
    h("p", { class: "item-meta muted" }, timeEl(entry.at, true), entry.ip ? h("span", {}, `IP ${entry.ip}`) : null),
    entry.detail ? h("p", { class: "timeline-detail" }, entry.detail) : null);
}

const audit = pager({
  fetchPage: (cursor) => get(pageUrl(`${path}/audit`, { limit: AUDIT_PAGE, cursor, type: auditType })),
  render: (entries, { append }) => {
    const list = $("#audit-list");
    if (!append) clear(list);
    list.append(...entries.map(auditItem));
    show($("#audit-empty"), list.children.length === 0);
  },
  more: $("#audit-more"),
  onError: pageError,
});

function setupAudit() {
  const select = $("#audit-type");
  select.append(h("option", { value: "" }, "All entries"),
    ...Object.entries(AUDIT_TYPES).map(([type, label]) => h("option", { value: type }, label)));
  select.addEventListener("change", () => {
    auditType = select.value;
    audit.reset();
  });
  $("#audit-filter").addEventListener("submit", (event) => event.preventDefault());
}

async function init() {
  if (!(await startConsole()) || !userId) return;
  setupEdit();
  setupActions();
  setupAudit();
  try {
    await load();
    await audit.reset();
  } catch (error) {
    pageError(error);
  }
  $("#main").removeAttribute("aria-busy");
  ready();
}

init();
