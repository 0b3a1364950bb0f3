/** Route names for metric labels: a fixed set, whatever paths clients try. */
const KNOWN = new Set([
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/v1/responses",
  "/v1/models",
  "/v1/messages",
  "/v1/messages/count_tokens",
  "/stats",
  "/health",
  "/health/ready",
  "/metrics",
]);

export function routeLabel(path: string): string {
  if (KNOWN.has(path)) return path;
  if (path.startsWith("/v1/")) return "/v1/other";
  return "other";
}
