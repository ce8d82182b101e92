// A keyset-paged list ({items, next_cursor}): the first page, then "Show More" appends the next one.
import { show } from "../dom.js";

/**
 * `fetchPage(cursor)` answers a page; `render(items, { append })` draws it. `reset()` starts over (a new
 * search or filter); an answer that arrives after a newer reset is dropped.
 */
export function pager({ fetchPage, render, more, onError }) {
  let cursor = null;
  let generation = 0;

  async function load(append) {
    const mine = ++generation;
    more.disabled = true;
    try {
      const page = await fetchPage(append ? cursor : null);
      if (mine !== generation) return;
      render(page.items || [], { append });
      cursor = page.next_cursor || null;
      show(more, Boolean(cursor));
    } catch (error) {
      if (mine === generation) onError(error);
    } finally {
      if (mine === generation) more.disabled = false;
    }
  }

  more.addEventListener("click", () => load(true));
  return { reset: () => load(false) };
}

/** `path?limit=…&cursor=…&more` with only the parameters that are set. */
export function pageUrl(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(key, String(value));
  }
  return `${path}?${query}`;
}
