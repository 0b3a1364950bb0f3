/**
 * postgres.js 3.4 can throw from inside its own socket callbacks when the
 * server goes away under load (a write to a connection that was just closed:
 * "null is not an object (evaluating 'socket.write')", or a reconnect's
 * ECONNREFUSED). Such an error escapes every promise, so it would take the
 * whole gateway down, while the queries it belonged to fail or time out and
 * the gateway already copes with that (journal, outage mode). It is
 * recognised by where it was thrown: inside the driver's own files.
 */
export function isDriverSocketGlitch(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const stack = err.stack ?? "";
  return /node_modules[\\/]postgres[\\/]src[\\/]/.test(stack);
}
