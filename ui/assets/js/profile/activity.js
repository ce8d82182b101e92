// The Security tab's Recent activity section: GET /api/auth/activity?limit=&cursor= (newest first), each
// entry's time, plain-words label, browser and IP; "Show more" follows next_cursor. Its "This wasn't me?"
// hint points at changing the password and signing out other sessions.
import { get, post } from "../api.js";
import { confirmDialog } from "../dialogs.js";
import { $, clear, h, say, show, timeEl } from "../dom.js";
import { describeAgent } from "./agent.js";
import { describeActivity } from "./activity-labels.js";
import { handledSignedOut, pageError } from "./context.js";
import { focusPasswordChange } from "./password.js";
import { CANCELLED, withReauth } from "./reauth.js";
import { focusSessions } from "./sessions.js";

const PAGE = 20;
let nextCursor = null;

/**
 * Undo one change in place (POST /api/auth/activity/{id}/undo), as the "This wasn't me" link of its email
 * would: confirm, re-authenticate when the server asks, then reload the list. Every other session ends.
 */
async function undo(item, title, button) {
  const yes = await confirmDialog({
    title: "Undo this change?",
    message: `“${title}” will be reversed, and every other session of your account will be signed out.`,
    confirmLabel: "Undo",
    danger: true,
  });
  if (!yes) return;
  button.disabled = true;
  try {
    const answer = await withReauth(() => post(`/api/auth/activity/${encodeURIComponent(item.id)}/undo`));
    if (answer === CANCELLED) return;
    say($("#activity-status"), answer && answer.undone
      ? `Undone: ${title}. Your other sessions were signed out.`
      : "That change could not be undone any more; your other sessions were signed out.");
    await loadActivity();
  } catch (error) {
    if (!handledSignedOut(error)) pageError(error);
  } finally {
    button.disabled = false;
  }
}

function activityItem(item) {
  const { title, detail } = describeActivity(item);
  const meta = [h("span", {}, timeEl(item.at, true))];
  if (item.user_agent) meta.push(h("span", { title: item.user_agent }, describeAgent(item.user_agent)));
  if (item.ip) meta.push(h("span", {}, `IP ${item.ip}`));
  let action = null;
  if (item.undoable === true && typeof item.id === "string") {
    action = h("button", { type: "button", class: "button button-secondary button-small",
      "aria-label": `Undo: ${title}` }, "Undo");
    action.addEventListener("click", () => undo(item, title, action));
  }
  return h("li", { class: "item", "data-activity-type": String(item.type || ""), tabindex: "-1" },
    h("div", { class: "item-main" },
      h("p", { class: "item-title" }, title),
      detail ? h("p", { class: "item-detail" }, detail) : null,
      h("p", { class: "item-meta muted" }, meta)),
    action);
}

async function loadPage(cursor) {
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (cursor) query.set("cursor", cursor);
  const answer = await get(`/api/auth/activity?${query}`);
  const items = (answer && Array.isArray(answer.items)) ? answer.items : [];
  nextCursor = (answer && answer.next_cursor) || null;
  return items.map(activityItem);
}

function failed(error) {
  if (handledSignedOut(error)) return;
  say($("#activity-error"), "Your recent activity couldn't be loaded. Reload the page to try again.", "error");
}

export async function loadActivity() {
  show($("#activity-section"), true);
  say($("#activity-error"), "");
  try {
    const rows = await loadPage(null);
    clear($("#activity-list")).append(...rows);
    show($("#activity-empty"), rows.length === 0);
  } catch (error) {
    failed(error);
  }
  show($("#activity-more"), Boolean(nextCursor));
}

export function setupActivity() {
  const more = $("#activity-more");
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const rows = await loadPage(nextCursor);
      $("#activity-list").append(...rows);
      // Focus the first new entry, so a keyboard or screen reader user continues where the list grew.
      if (rows.length) rows[0].focus();
    } catch (error) {
      failed(error);
    } finally {
      more.disabled = false;
      show(more, Boolean(nextCursor));
    }
  });
  $("#activity-change-password").addEventListener("click", focusPasswordChange);
  $("#activity-sign-out-others").addEventListener("click", focusSessions);
}
