import createClient, { type Middleware } from "openapi-fetch";
import { download } from "../lib/csv";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Inspection = Schemas["InspectionOut"];
export type Model = Schemas["ModelOut"];
export type Station = Schemas["StationOut"];
export type Job = Schemas["JobOut"];
export type User = Schemas["UserOut"];
export type ApiKey = Schemas["ApiKeyOut"];
export type Dataset = Schemas["DatasetOut"];
export type Role = Schemas["UserOut"]["role"];
export type Verdict = Inspection["verdict"];

const TOKEN_KEY = "linewatch.token";

let token: string | null = typeof localStorage !== "undefined" ? localStorage.getItem(TOKEN_KEY) : null;
const unauthorizedListeners = new Set<() => void>();

export function getToken(): string | null {
  return token;
}

export function setToken(value: string | null): void {
  token = value;
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

/** Called when the service says the token is no longer valid (expired, user deactivated). */
export function onUnauthorized(listener: () => void): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

const auth: Middleware = {
  onRequest({ request }) {
    if (token) request.headers.set("Authorization", `Bearer ${token}`);
    return request;
  },
  onResponse({ response, request }) {
    if (response.status === 401 && token && !request.url.endsWith("/auth/login")) {
      unauthorizedListeners.forEach((f) => f());
    }
    return response;
  },
};

export const api = createClient<paths>({
  baseUrl: typeof location !== "undefined" ? location.origin : "",
  fetch: (request) => globalThis.fetch(request), // looked up per call (tests replace it)
});
api.use(auth);

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body?: unknown, // the error's body as the service sent it (a 422's field errors)
  ) {
    super(message);
  }
}

const FRIENDLY: Record<number, string> = {
  401: "Your session has ended. Please sign in again.",
  403: "Your role does not allow this.",
  404: "Not found.",
  413: "That is too large for the service.",
  503: "The service's database or image store is unavailable right now. Try again in a few seconds.",
};

/** A message a person understands, from an API error body ({detail, errors}) and the status. */
export function errorMessage(status: number, body: unknown): string {
  const b = body as { detail?: unknown; errors?: { loc: (string | number)[]; msg: string }[] } | undefined;
  if (b && Array.isArray(b.errors) && b.errors.length) {
    return b.errors.map((e) => `${e.loc.filter((x) => x !== "body").join(".")}: ${e.msg}`).join("; ");
  }
  if (b && Array.isArray(b.detail) && b.detail.length) {
    // field errors: [{path, message}] (the twin's model) or FastAPI's [{loc, msg}]
    return (b.detail as { path?: string; message?: string; loc?: (string | number)[]; msg?: string }[])
      .map((e) => {
        const where = e.path ?? (e.loc ?? []).filter((x) => x !== "body").join(".");
        return `${where ? `${where}: ` : ""}${e.message ?? e.msg ?? ""}`;
      })
      .join("; ");
  }
  if (b && typeof b.detail === "string" && b.detail) {
    const d = b.detail;
    return d.charAt(0).toUpperCase() + d.slice(1) + (d.endsWith(".") ? "" : ".");
  }
  if (status >= 500) return FRIENDLY[503];
  return FRIENDLY[status] ?? `The service answered with an error (HTTP ${status}).`;
}

export const OFFLINE = "Cannot reach the linewatch service. Check the network, or that the service is running.";

/** The data of an openapi-fetch result, or an ApiError with a readable message. */
export async function call<T>(
  promise: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let r: { data?: T; error?: unknown; response: Response };
  try {
    r = await promise;
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(OFFLINE, 0);
  }
  if (!r.response.ok) throw new ApiError(errorMessage(r.response.status, r.error), r.response.status);
  return r.data as T;
}

/** Multipart uploads (openapi-fetch's body typing does not help there), POST unless ``method`` says PUT; same errors
 * as `call`. */
export async function postForm<T>(path: string, form: FormData, method: "POST" | "PUT" = "POST"): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      body: form,
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
  } catch {
    throw new ApiError(OFFLINE, 0);
  }
  const body = await response.json().catch(() => undefined);
  if (!response.ok) {
    if (response.status === 401) unauthorizedListeners.forEach((f) => f());
    throw new ApiError(errorMessage(response.status, body), response.status);
  }
  return body as T;
}

/** A file the API answers (a model's zip), saved by the browser as ``name``; the same errors as `call`. */
export async function downloadFrom(path: string, name: string, type = "application/zip"): Promise<void> {
  let r: Response;
  try {
    r = await fetch(path, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  } catch {
    throw new ApiError(OFFLINE, 0);
  }
  if (!r.ok) throw new ApiError(errorMessage(r.status, await r.json().catch(() => undefined)), r.status);
  download(name, await r.blob(), type);
}

/** JSON to and from a path the generated types may not know yet (or whose body is free-form, like a line model);
 * the same errors as `call`, the error body kept on the ApiError. */
export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  let response: Response;
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  try {
    response = await globalThis.fetch(new Request(new URL(path, location.origin), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }));
  } catch {
    throw new ApiError(OFFLINE, 0);
  }
  const data = response.status === 204 ? undefined : await response.json().catch(() => undefined);
  if (!response.ok) {
    if (response.status === 401 && token) unauthorizedListeners.forEach((f) => f());
    throw new ApiError(errorMessage(response.status, data), response.status, data);
  }
  return data as T;
}

const ROLE_RANK: Record<Role, number> = { viewer: 0, operator: 1, engineer: 2, admin: 3 };

export function can(role: Role | undefined, needed: Role): boolean {
  return role !== undefined && ROLE_RANK[role] >= ROLE_RANK[needed];
}
