// The Security tab's Sessions section: where the account is signed in, Revoke one, Sign Out Other Sessions.
import { del, get } from "../api.js";
import { confirmDialog } from "../dialogs.js";
import { $, clear, h, say, show, timeEl } from "../dom.js";
import { describeAgent } from "./agent.js";
import { pageError } from "./context.js";

// How a session signed in (GET /api/auth/sessions `method`: the first step, then "+" the second factor).
const FIRST_STEPS = { password: "password", passkey: "a passkey", sso: "single sign-on" };
const SECOND_STEPS = { totp: "authenticator app", webauthn: "security key", recovery_code: "recovery code" };

export function describeMethod(method) {
  const [first, second] = String(method || "").split("+");
  if (!FIRST_STEPS[first]) return null;
  return SECOND_STEPS[second] ? `With ${FIRST_STEPS[first]} and ${SECOND_STEPS[second]}` : `With ${FIRST_STEPS[first]}`;
}

function sessionItem(session) {
  const label = describeAgent(session.user_agent);
  const meta = [h("span", {}, "Signed in ", timeEl(session.created_at, true))];
  const how = describeMethod(session.method);
  if (how) meta.push(h("span", {}, how));
  if (session.last_seen_at) meta.push(h("span", {}, "Last active ", timeEl(session.last_seen_at, true)));
  if (session.ip) meta.push(h("span", {}, `IP ${session.ip}`));
  let action = null;
  if (!session.current) {
    action = h("button", { type: "button", class: "button button-secondary button-small",
      "aria-label": `Revoke session: ${label}` }, "Revoke");
    action.addEventListener("click", async () => {
      action.disabled = true;
      try {
        await del(`/api/auth/sessions/${encodeURIComponent(session.id)}`);
        say($("#sessions-status"), `Session revoked: ${label}.`);
        await loadSessions();
        $("#sessions-title").focus();
      } catch (error) {
        action.disabled = false;
        pageError(error);
      }
    });
  }
  return h("li", { class: "item", "data-session-id": session.id },
    h("div", { class: "item-main" },
      h("p", { class: "item-title", title: session.user_agent || "" }, label,
        session.current ? h("span", { class: "badge badge-on" }, "This device") : null),
      h("p", { class: "item-meta muted" }, meta)),
    action);
}

export async function loadSessions() {
  const sessions = await get("/api/auth/sessions");
  const list = clear($("#sessions-list"));
  for (const session of sessions || []) list.append(sessionItem(session));
  show($("#revoke-others"), (sessions || []).some((s) => !s.current));
}

/** Moves to the Sessions section; offers Sign Out Other Sessions when there are others. */
export function focusSessions() {
  const others = $("#revoke-others");
  if (!others.hidden) others.focus();
  else $("#sessions-title").focus();
}

export function setupSessions() {
  $("#sessions-title").tabIndex = -1;
  $("#revoke-others").addEventListener("click", async (event) => {
    const sure = await confirmDialog({
      title: "Sign out other sessions?",
      message: "Every other browser and device signed in to your account will be signed out.",
      confirmLabel: "Sign Out Others",
      danger: true,
    });
    if (!sure) return;
    try {
      await del("/api/auth/sessions");
      say($("#sessions-status"), "Signed out of every other session.");
      await loadSessions();
      $("#sessions-title").focus();
    } catch (error) {
      pageError(error);
      event.target.focus();
    }
  });
}
