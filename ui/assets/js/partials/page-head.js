// The part of every portal page that is the same everywhere: the favicon, the skip link and the top
// bar (brand; on signed-in pages the navigation and Sign out). Pages keep in their own <head> only what
// must be there before the first paint (charset, viewport, title, the stylesheets, their one script),
// because pages are static files that nginx serves as they are (deploy/nginx, README "How it is built").
import { post } from "../api.js";
import { $, h } from "../dom.js";

// The navigation of signed-in pages: [href, label, key]; the admin console's pages add their lists.
const PORTAL_NAV = [["/portal/profile", "Profile", "profile"]];
const CONSOLE_NAV = [["/portal/admin/", "Clients", "clients"], ...PORTAL_NAV];

/**
 * Puts the shared head and top bar into the page. `current` names the navigation entry of this page
 * ("profile", "clients"); `signedIn` adds the navigation and a Sign out button (id `sign-out`, wired
 * with `wireSignedInControls`); `adminConsole` makes it the MSP admin console's bar.
 */
export function mountPageHead({ signedIn = false, current = "", adminConsole = false } = {}) {
  const favicon = document.querySelector('link[rel="icon"]');
  if (!favicon) {
    const assets = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
    document.head.append(h("link", { rel: "icon", href: `${assets}/img/favicon.svg`, type: "image/svg+xml" }));
  }
  const links = (adminConsole ? CONSOLE_NAV : PORTAL_NAV).map(([href, label, key]) =>
    h("a", { href, "aria-current": current === key ? "page" : null }, label));
  const nav = signedIn
    ? h("nav", { class: "topnav", "aria-label": "Portal" }, links,
      h("button", { type: "button", id: "sign-out", class: "link-button" }, "Sign out"))
    : null;
  const brand = adminConsole
    ? h("a", { class: "brand", href: "/portal/admin/" }, "Client Portal ", h("span", { class: "brand-tag" }, "MSP Admin"))
    : h("a", { class: "brand", href: "/portal/" }, "Client Portal");
  const topbar = h("header", { class: "topbar" }, brand, nav);
  document.body.prepend(h("a", { class: "skip-link", href: "#main" }, "Skip to content"), topbar);
}

/**
 * Wires Sign out (then `leave()`: to the sign-in page) and the Stop Viewing button (selector `stopViewing`)
 * of the bar an admin sees while viewing an account; a failure to stop goes to `onError`.
 */
export function wireSignedInControls({ stopViewing, leave, onError }) {
  $("#sign-out").addEventListener("click", async () => {
    try {
      await post("/api/auth/logout");
    } catch {
      // signed out either way
    }
    leave();
  });
  $(stopViewing).addEventListener("click", async () => {
    try {
      await post("/api/admin/impersonation/stop");
      window.location.reload();
    } catch (error) {
      onError(error);
    }
  });
}
