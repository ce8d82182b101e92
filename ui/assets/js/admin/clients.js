// The admin console's clients page (/portal/admin/): search, each client's users and two-factor adoption, create.
import { get, post } from "../api.js";
import { $, clear, h, ready, say } from "../dom.js";
import { busy, clearErrors, requireFields, showError, showFieldErrors, value } from "../forms.js";
import { adoption, clientUrl, handledSignedOut, mountConsolePage, pageError, startConsole } from "./console.js";
import { pageUrl, pager } from "./pager.js";

mountConsolePage({ current: "clients" });

const PAGE = 50;
let query = "";

function row(client) {
  return h("tr", { "data-client-id": client.id },
    h("th", { scope: "row" }, h("a", { href: clientUrl(client.id) }, client.name)),
    h("td", {}, String(client.user_count)),
    h("td", {}, adoption(client.two_factor_count, client.user_count)));
}

const list = pager({
  fetchPage: (cursor) => get(pageUrl("/api/admin/clients", { limit: PAGE, cursor, q: query })),
  render: (clients, { append }) => {
    const body = $("#clients-body");
    if (!append) clear(body);
    body.append(...clients.map(row));
    const shown = body.children.length;
    say($("#clients-status"), shown ? "" : query ? `No client matches “${query}”.` : "No clients yet.");
  },
  more: $("#clients-more"),
  onError: pageError,
});

function setupSearch() {
  const form = $("#search-form");
  let timer = null;
  const search = () => {
    query = value(form, "q").trim();
    list.reset();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    search();
  });
  form.elements.namedItem("q").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(search, 300);  // search as the admin types, once they pause
  });
}

function setupCreate() {
  const form = $("#create-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    say($("#create-status"), "");
    const errors = requireFields(form, { name: "Enter the client's name." });
    if (Object.keys(errors).length) {
      showFieldErrors(form, errors);
      return;
    }
    await busy(form, async () => {
      try {
        const client = await post("/api/admin/clients", { name: value(form, "name").trim() });
        form.reset();
        $("#create-status").replaceChildren("Created ", h("a", { href: clientUrl(client.id) }, client.name),
          ". Open it to invite its users.");
        $("#create-status").hidden = false;
        await list.reset();
      } catch (error) {
        if (!handledSignedOut(error)) showError(form, error);
      }
    });
  });
}

async function init() {
  if (!(await startConsole())) return;
  setupSearch();
  setupCreate();
  await list.reset();
  $("#main").removeAttribute("aria-busy");
  ready();
}

init();
