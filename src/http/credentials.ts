/**
 * The key a client presents: `Authorization: Bearer`, `x-api-key` (what the
 * Anthropic SDK sends) or the `api_key` query parameter, in that order.
 */
export function presentedKey(req: Request, url: URL): string | null {
  const auth = req.headers.get("authorization");
  if (auth) {
    const m = /^\s*bearer\s+(\S+)\s*$/i.exec(auth);
    if (m?.[1]) return m[1];
  }
  const header = req.headers.get("x-api-key");
  if (header?.trim()) return header.trim();
  const query = url.searchParams.get("api_key");
  if (query) return query;
  return null;
}
