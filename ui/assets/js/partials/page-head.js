// The part of every portal page that is the same everywhere: the favicon, the skip link and the top
// bar (brand; on signed-in pages the navigation and Sign out). Pages keep in their own <head> only what
// must be there before the first paint (charset, viewport, title, the stylesheet, their one script),
// because pages are static files that nginx serves as they are (deploy/nginx, README "How it is built").
import { h } from "../dom.js";

/**
 * Puts the shared head and top bar into the page. `current` names the navigation entry of this page
 * ("profile"); `signedIn` adds the navigation and a Sign out button (id `sign-out`, wired by the page).
 */
export function mountPageHead({ signedIn = false, current = "" } = {}) {
  const favicon = document.querySelector('link[rel="icon"]');
  if (!favicon) {
    const assets = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
    document.head.append(h("link", { rel: "icon", href: `${assets}/img/favicon.svg`, type: "image/svg+xml" }));
  }
  const nav = signedIn
    ? h("nav", { class: "topnav", "aria-label": "Portal" },
      h("a", { href: "/portal/profile", "aria-current": current === "profile" ? "page" : null }, "Profile"),
      h("button", { type: "button", id: "sign-out", class: "link-button" }, "Sign out"))
    : null;
  const topbar = h("header", { class: "topbar" }, h("a", { class: "brand", href: "/portal/" }, "Client Portal"), nav);
  document.body.prepend(h("a", { class: "skip-link", href: "#main" }, "Skip to content"), topbar);
}
