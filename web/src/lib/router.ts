import { useSyncExternalStore } from "react";

// Hash routing: #/path?query. The service serves one index.html at /, so every route is a hash.
export interface Route {
  path: string;
  parts: string[];
  query: URLSearchParams;
}

function current(): string {
  return location.hash.replace(/^#/, "") || "/";
}

function subscribe(cb: () => void) {
  window.addEventListener("hashchange", cb);
  return () => window.removeEventListener("hashchange", cb);
}

export function parse(hash: string): Route {
  const [path, qs = ""] = hash.split("?", 2);
  return { path, parts: path.split("/").filter(Boolean), query: new URLSearchParams(qs) };
}

export function useRoute(): Route {
  const hash = useSyncExternalStore(subscribe, current, () => "/");
  return parse(hash);
}

export function navigate(to: string, replace = false): void {
  const url = `#${to}`;
  if (replace) history.replaceState(null, "", url);
  else location.hash = to;
  if (replace) window.dispatchEvent(new HashChangeEvent("hashchange"));
}
