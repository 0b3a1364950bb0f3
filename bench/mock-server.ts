/**
 * Runs the mock upstream as its own process, so the benchmark (and tests that
 * need the upstream outside their own event loop) can use it. Prints one JSON
 * line, {"url": ...}, once it listens.
 *
 *   bun bench/mock-server.ts [--record] [--port N]
 *
 * Recording is off by default here: under benchmark load a growing request log
 * would be a memory leak. GET /__mock/stats still counts requests and tokens.
 */
import { parseArgs } from "node:util";
import { startMockUpstream } from "../test/harness/mock-upstream.ts";

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      record: { type: "boolean", default: false },
      port: { type: "string", default: "0" },
    },
  });
  const mock = await startMockUpstream({ record: values.record, port: Number(values.port) });
  const shutdown = () => {
    void mock.stop().finally(() => process.exit(0));
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
  process.stdout.write(`${JSON.stringify({ url: mock.url })}\n`);
}

if (import.meta.main) {
  await main();
}
