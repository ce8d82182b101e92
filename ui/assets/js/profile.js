// The Profile page (/portal/profile): the Profile and Security tabs. Each section is a module under
// profile/ (details, password, security = two-factor, sessions, activity); this file signs the page in
// and wires them up. The words on the page are those the browser tests check (tests/browser/).
import { ApiError, get, rememberCsrfToken } from "./api.js";
import { $, queryParam, ready, say } from "./dom.js";
import { mountPage } from "./partials/page.js";
import { wireSignedInControls } from "./partials/page-head.js";
import { loadActivity, setupActivity } from "./profile/activity.js";
import { pageError, state, toLogin } from "./profile/context.js";
import { loadProfile, setupProfileForm } from "./profile/details.js";
import { renderPassword, setupPasswordForm } from "./profile/password.js";
import { loadMfa, setupTwoFactor } from "./profile/security.js";
import { loadSessions, setupSessions } from "./profile/sessions.js";
import { onFirstShow, setupTabs } from "./profile/tabs.js";

async function init() {
  mountPage({ signedIn: true, current: "profile" });
  try {
    state.session = await get("/api/auth/session");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) toLogin();
    else pageError(error);
    return;
  }
  if (!state.session || state.session.state !== "signed_in") {
    toLogin();
    return;
  }
  rememberCsrfToken(state.session.csrf_token);
  // Back from "Continue with your company" (the single sign-on callback marked the session re-authenticated).
  const reauthenticated = queryParam("reauth") === "sso";
  if (reauthenticated) {
    history.replaceState(null, "", window.location.pathname);
    say($("#page-notice"), "You've confirmed it's you. For the next 10 minutes you can change your security settings.",
      "success");
  }
  setupTabs({ security: reauthenticated });
  wireSignedInControls({ stopViewing: "#stop-impersonation", leave: toLogin, onError: pageError });
  setupProfileForm();
  renderPassword();
  setupPasswordForm();
  setupTwoFactor();
  setupSessions();
  setupActivity();
  // The activity list is read when the Security tab is first shown: most visits never open it.
  onFirstShow("tab-security", loadActivity);
  const results = await Promise.allSettled([loadProfile(), loadMfa(), loadSessions()]);
  for (const result of results) if (result.status === "rejected") pageError(result.reason);
  $("#main").removeAttribute("aria-busy");
  ready();
}

init();
