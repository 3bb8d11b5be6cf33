// @ts-check
// The admin API, called with the admin token kept in this tab's
// sessionStorage (never a cookie, never a URL).

export const TOKEN_KEY = 'leadbridge.adminToken';

/** What to do when the token is refused (the app signs out). */
let unauthorized = (/** @type {string} */ _message) => {};

/** @param {(message: string) => void} f */
export function onUnauthorized(f) {
  unauthorized = f;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export async function api(method, path, body, contentType) {
  const headers = { Authorization: `Bearer ${token()}`, Accept: 'application/json' };
  let payload;
  if (body !== undefined) {
    payload = body instanceof Blob || typeof body === 'string' ? body : JSON.stringify(body);
    headers['Content-Type'] = contentType || 'application/json';
  }
  const res = await fetch(path, { method, headers, body: payload, credentials: 'omit', cache: 'no-store' });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text.slice(0, 200) };
  }
  if (res.status === 401) {
    unauthorized('The admin token was refused. Sign in again.');
    throw new ApiError(401, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const enc = encodeURIComponent;
export const connPath = (name) => `/v1/connections/${enc(name)}`;
