// The Profile and Security tabs (WAI-ARIA tabs pattern: arrow keys, Home, End; #security opens that tab).
import { $, $$, show } from "../dom.js";

const tabs = () => $$('[role="tab"]');

const shown = new Set(); // ids of the tabs shown at least once
const pending = new Map(); // tab id -> callbacks waiting for its first showing

/** Runs `callback` when the tab is first shown (at once if it has been): work only that tab needs. */
export function onFirstShow(tabId, callback) {
  if (shown.has(tabId)) callback();
  else pending.set(tabId, [...(pending.get(tabId) || []), callback]);
}

function selectTab(tab, { focus = false, updateHash = true } = {}) {
  for (const other of tabs()) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    show(document.getElementById(other.getAttribute("aria-controls")), selected);
  }
  if (!shown.has(tab.id)) {
    shown.add(tab.id);
    for (const callback of pending.get(tab.id) || []) callback();
    pending.delete(tab.id);
  }
  if (focus) tab.focus();
  if (updateHash) {
    const hash = tab.id === "tab-security" ? "#security" : "#profile";
    history.replaceState(null, "", `${window.location.pathname}${window.location.search}${hash}`);
  }
}

/** `security`: open the Security tab whatever the address says (back from a re-authentication). */
export function setupTabs({ security = false } = {}) {
  for (const tab of tabs()) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const list = tabs();
      const index = list.indexOf(tab);
      let next = null;
      if (event.key === "ArrowRight") next = list[(index + 1) % list.length];
      else if (event.key === "ArrowLeft") next = list[(index - 1 + list.length) % list.length];
      else if (event.key === "Home") next = list[0];
      else if (event.key === "End") next = list[list.length - 1];
      if (next) {
        event.preventDefault();
        selectTab(next, { focus: true });
      }
    });
  }
  const initial = security || window.location.hash === "#security" ? $("#tab-security") : $("#tab-profile");
  selectTab(initial, { updateHash: security });
}
