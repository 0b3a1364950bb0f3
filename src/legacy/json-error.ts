/**
 * A JSON parse error fit to show: the parser may quote a token of the input
 * ("Unexpected identifier "pk_…"") and the input may be a file of keys, so
 * anything quoted is blanked out.
 */
export function jsonErrorMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/"[^"]*"/g, '"…"').replace(/'[^']*'/g, "'…'");
}
