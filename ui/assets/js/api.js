// Calls to the portal API (README.md "Using it"; the services' OpenAPI documents, e.g.
// services/profile/profile_service/openapi.json): JSON in and out, RFC 9457 problem+json errors,
// X-CSRF-Token from the portal_csrf cookie on every mutating request.

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
let csrfFallback = "";

export class ApiError extends Error {
  constructor(status, problem, retryAfter = null) {
    const body = problem && typeof problem === "object" ? problem : {};
    super(body.detail || defaultMessage(status));
    this.name = "ApiError";
    this.status = status;
    this.problem = body;
    this.retryAfter = retryAfter;
  }

  /** True when the problem type ends with `/kind` (e.g. "reauth-required"). */
  is(kind) {
    return typeof this.problem.type === "string" && this.problem.type.endsWith(`/${kind}`);
  }

  get errors() {
    return this.problem.errors && typeof this.problem.errors === "object" ? this.problem.errors : {};
  }

  /** The message to show: the problem's detail, with the wait when rate limited. */
  get userMessage() {
    if (this.status === 429) {
      const seconds = Number.parseInt(this.retryAfter || "", 10);
      const wait = Number.isFinite(seconds) ? ` Try again in ${seconds} second${seconds === 1 ? "" : "s"}.` : "";
      return `Too many attempts.${wait || " Try again shortly."}`;
    }
    return this.message;
  }
}

function defaultMessage(status) {
  if (status === 0) return "We couldn't reach the portal. Check your connection and try again.";
  if (status === 401) return "Please sign in to continue.";
  if (status === 403) return "You don't have permission to do that.";
  if (status >= 500) return "Something went wrong on our side. Please try again.";
  return "The request could not be completed.";
}

export function readCookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

export function csrfToken() {
  return readCookie("portal_csrf") || csrfFallback;
}

/** The session answer carries the token too; used when the cookie cannot be read. */
export function rememberCsrfToken(token) {
  if (typeof token === "string") csrfFallback = token;
}

/** Like api(), but answers { data, headers } (for the few answers that say something in a header). */
export async function apiResponse(method, path, body) {
  const headers = { Accept: "application/json, application/problem+json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (!SAFE_METHODS.has(method)) {
    const token = csrfToken();
    if (token) headers["X-CSRF-Token"] = token;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, null);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, data, response.headers.get("Retry-After"));
  return { data, headers: response.headers };
}

export async function api(method, path, body) {
  return (await apiResponse(method, path, body)).data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);
export const patch = (path, body) => api("PATCH", path, body);
export const del = (path) => api("DELETE", path);
