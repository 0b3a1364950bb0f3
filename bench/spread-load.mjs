/**
 * autocannon over many keys: the same request as the other throughput phases,
 * but each connection cycles through every key, starting from its own offset.
 *
 *   node bench/spread-load.mjs '<spec json>'   (spawned by runSpreadLoad)
 *
 * Why a script and not the autocannon CLI: the CLI sends one fixed set of
 * headers, and its --har list is walked by every connection from the first
 * entry, so all connections would move through the keys in step (tens of
 * requests on one key at once, then the next). Only the programmatic
 * `setupClient` hook can give each connection its own starting point.
 * JavaScript, not TypeScript, because it runs under node (v20 cannot run
 * TypeScript), like the CLI, so the load generator stays the same program.
 * Prints autocannon's result as one JSON line, as `autocannon --json` does.
 */
import autocannon from "autocannon";

const spec = JSON.parse(process.argv[2] ?? "");
const { pathname, search } = new URL(spec.url);
const requests = spec.keys.map((key) => ({
  method: "POST",
  path: `${pathname}${search}`,
  headers: { ...spec.headers, authorization: `Bearer ${key}` },
  body: spec.body,
}));
const connections = spec.connections;
const starts = connections * spec.slots;

// Connection c of generator `slot` starts at an even share of the key ring,
// interleaved with the other generators' connections.
let connection = 0;
function setupClient(client) {
  const share = connection * spec.slots + spec.slot;
  connection++;
  const first = Math.floor((share * requests.length) / starts) % requests.length;
  const mine = [...requests.slice(first), ...requests.slice(0, first)];
  // Own copies: autocannon keeps a built buffer on each request object.
  client.setRequests(mine.map((r) => ({ ...r, headers: { ...r.headers } })));
}

autocannon(
  {
    url: spec.url,
    connections,
    duration: spec.durationSec,
    requests,
    setupClient,
  },
  (error, result) => {
    if (error) {
      process.stderr.write(`spread-load: ${error.message}\n`);
      process.exit(1);
    }
    // Idle keep-alive sockets must not hold the process open.
    process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
  },
);
