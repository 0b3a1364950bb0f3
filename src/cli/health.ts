import { Command } from "commander";
import { loadConfig } from "../config.ts";
import { printJson } from "./output.ts";

/** Exit codes of `tollgate health`. */
const EXIT = { serving: 0, down: 1 } as const;

export function healthCommand(): Command {
  return new Command("health")
    .description("ask a running gateway whether it is ready (GET /health/ready)")
    .option("--url <url>", "the gateway's base URL (default: http://127.0.0.1:PORT)")
    .option("--json", "print the gateway's answer as JSON")
    .addHelpText(
      "after",
      "\nExit codes: 0 the gateway serves (ok or degraded), 1 it cannot serve or does not answer.",
    )
    .action(async (o: { url?: string; json?: boolean }) => {
      const config = loadConfig();
      const base = (o.url ?? `http://127.0.0.1:${config.port}`).replace(/\/+$/, "");
      let body: {
        status?: string;
        storage?: { reachable?: boolean; latency_ms?: number | null; error?: string | null };
        usage?: { unsynced_events?: number };
        upstream?: { error?: string | null };
      };
      try {
        const res = await fetch(`${base}/health/ready`, { signal: AbortSignal.timeout(5000) });
        body = (await res.json()) as typeof body;
      } catch (err) {
        process.stderr.write(`error: no answer from ${base}: ${(err as Error).message}\n`);
        process.exit(EXIT.down);
      }
      if (o.json) printJson(body);
      else {
        const s = body.storage ?? {};
        const db = s.reachable
          ? `database reachable (${s.latency_ms ?? "?"} ms)`
          : `database unreachable: ${s.error ?? "unknown"}`;
        const upstream = body.upstream?.error ? `; ${body.upstream.error}` : "";
        process.stdout.write(
          `${body.status ?? "unknown"}: ${db}; ${body.usage?.unsynced_events ?? 0} usage events not yet in the database${upstream}\n`,
        );
      }
      process.exit(body.status === "ok" || body.status === "degraded" ? EXIT.serving : EXIT.down);
    });
}
