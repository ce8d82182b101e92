// The admin console's client page (/portal/admin/client?id=): its users, invite user, resend invitation,
// and its single sign-on settings (shown when the API answers an `sso` key for the client).
import { get, post } from "../api.js";
import { $, clear, ready, say, show } from "../dom.js";
import { busy, clearErrors, requireFields, showError, showFieldErrors, value } from "../forms.js";
import { adoption, handledSignedOut, mountConsolePage, pageError, requiredParam, startConsole } from "./console.js";
import { pageUrl, pager } from "./pager.js";
import { setupSso } from "./sso.js";
import { userRow } from "./users-table.js";

mountConsolePage();

const PAGE = 50;
const clientId = requiredParam("id");

function renderClient(client) {
  $("#client-name").textContent = client.name;
  $("#client-summary").textContent =
    `${client.user_count} user${client.user_count === 1 ? "" : "s"} · Two-factor adoption: ${adoption(client.two_factor_count, client.user_count)}`;
  document.title = `${client.name} · MSP Admin · Client Portal`;
}

async function loadClient() {
  const client = await get(`/api/admin/clients/${encodeURIComponent(clientId)}`);
  renderClient(client);
  return client;
}

async function resend(user, button) {
  say($("#users-status"), "");
  button.disabled = true;
  try {
    await post(`/api/admin/users/${encodeURIComponent(user.id)}/invitation`);
    say($("#users-status"), `A new invitation was sent to ${user.email}. The earlier link no longer works.`);
    await users.reset();
    $("#users-title").focus();
  } catch (error) {
    button.disabled = false;
    pageError(error);
  }
}

const users = pager({
  fetchPage: (cursor) => get(pageUrl("/api/admin/users", { client_id: clientId, limit: PAGE, cursor })),
  render: (items, { append }) => {
    const body = $("#users-body");
    if (!append) clear(body);
    body.append(...items.map((user) => userRow(user, resend)));
    show($("#users-empty"), body.children.length === 0);
  },
  more: $("#users-more"),
  onError: pageError,
});

function setupInvite() {
  const form = $("#invite-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    say($("#invite-status"), "");
    const errors = requireFields(form, { name: "Enter the user's name.", email: "Enter the user's email address." });
    if (Object.keys(errors).length) {
      showFieldErrors(form, errors);
      return;
    }
    const body = { client_id: clientId, name: value(form, "name").trim(), email: value(form, "email").trim() };
    for (const name of ["title", "mobile", "phone"]) {
      const text = value(form, name).trim();
      if (text) body[name] = text;
    }
    await busy(form, async () => {
      try {
        const user = await post("/api/admin/users", body);
        form.reset();
        say($("#invite-status"), `Invitation sent to ${user.email}.`, "success");
        await Promise.all([users.reset(), loadClient()]);
      } catch (error) {
        if (!handledSignedOut(error)) showError(form, error);
      }
    });
  });
}

async function init() {
  if (!(await startConsole()) || !clientId) return;
  $("#users-title").tabIndex = -1;
  setupInvite();
  try {
    const client = await loadClient();
    if (Object.hasOwn(client, "sso")) setupSso(clientId, client.sso);
    await users.reset();
  } catch (error) {
    pageError(error);
  }
  $("#main").removeAttribute("aria-busy");
  ready();
}

init();
