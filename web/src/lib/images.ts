import { useEffect, useState } from "react";
import { getToken } from "../api/client";

// Image endpoints need the bearer token, which an <img src> cannot send: fetch them and show object URLs.
// A bounded cache (least recently used out) keeps memory flat on a page that runs for hours.
const MAX = 300;
const cache = new Map<string, Promise<string>>();

function remember(url: string, p: Promise<string>) {
  cache.set(url, p);
  while (cache.size > MAX) {
    const [oldest, value] = cache.entries().next().value as [string, Promise<string>];
    cache.delete(oldest);
    // late enough that an <img> showing it has decoded it
    value.then((u) => setTimeout(() => URL.revokeObjectURL(u), 30_000)).catch(() => {});
  }
}

export function loadImage(url: string): Promise<string> {
  const hit = cache.get(url);
  if (hit) {
    cache.delete(url);
    cache.set(url, hit);
    return hit;
  }
  const token = getToken();
  const p = fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} }).then(async (r) => {
    if (!r.ok) throw new Error(r.status === 404 ? "The stored image is missing." : `Image not loaded (HTTP ${r.status}).`);
    return URL.createObjectURL(await r.blob());
  });
  p.catch(() => cache.delete(url));
  remember(url, p);
  return p;
}

export function useAuthedImage(url: string | null | undefined): { src?: string; error?: string } {
  const [state, setState] = useState<{ src?: string; error?: string }>({});
  useEffect(() => {
    if (!url) return;
    let live = true;
    setState({});
    loadImage(url).then(
      (src) => live && setState({ src }),
      (e: Error) => live && setState({ error: e.message }),
    );
    return () => {
      live = false;
    };
  }, [url]);
  return state;
}
