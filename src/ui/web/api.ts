/** The page's calls to the graft ui server: every request carries the session token from the page's URL. */

/** The session token (from the page's URL, else the meta tag the server wrote). */
export const TOKEN =
  new URLSearchParams(location.search).get('token') ?? decodeURIComponent(document.querySelector('meta[name="graft-token"]')?.getAttribute('content') ?? '');

/** A URL of the server with the token added. */
export function url(p: string, query: Record<string, string> = {}): string {
  const q = new URLSearchParams({ ...query, token: TOKEN });
  return `${p}?${q}`;
}

/** Calls the API; throws the server's error message. */
export async function api<T>(p: string, init: RequestInit & { query?: Record<string, string> } = {}): Promise<T> {
  const res = await fetch(url(p, init.query), init);
  const body = res.headers.get('content-type')?.includes('json') ? await res.json() : await res.text();
  if (!res.ok) throw new Error(typeof body === 'object' && body && 'error' in body ? String(body.error) : String(body));
  return body as T;
}

/** POSTs JSON. */
export function post<T>(p: string, body: unknown = {}): Promise<T> {
  return api<T>(p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** A thumbnail URL of an image file the server may read. */
export function imageUrl(file: string, size = 96): string {
  return url('/api/image', { path: file, size: String(size) });
}
