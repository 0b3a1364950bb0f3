/**
 * The token check of one PostgreSQL phase: what the database gained on the
 * phase's keys against what the mock upstream reported. Totals are read
 * through `tollgate keys list`, i.e. from the database itself, so usage still
 * pending in an instance's memory does not count: the check passes only once
 * every instance has written everything, exactly once.
 */
import type { KeyTotals } from "./keys.ts";
import { mockStats } from "./mock-client.ts";
import type { PgTokenCheck } from "./report-pg.ts";

// The gateway batches usage writes; give it this long before the first comparison.
const FLUSH_WAIT_MS = 1500;
const SETTLE_LIMIT_MS = 5000;
const POLL_MS = 250;

export interface PhaseTokens {
  label: string;
  upstream: string;
  /** Ids of the keys the phase sent requests with. */
  keyIds: string[];
  /** Every key's totals before the phase. */
  before: Map<string, KeyTotals>;
  readTotals: () => Promise<Map<string, KeyTotals>>;
  clientOk: number;
}

interface Gained {
  tokens: number;
  requests: number;
  keysCharged: number;
  minRequests: number;
  maxRequests: number;
  /** Tokens that landed on keys the phase did not use. */
  elsewhere: number;
}

function gained(phase: PhaseTokens, after: Map<string, KeyTotals>): Gained {
  const used = new Set(phase.keyIds);
  const out: Gained = {
    tokens: 0,
    requests: 0,
    keysCharged: 0,
    minRequests: Number.POSITIVE_INFINITY,
    maxRequests: 0,
    elsewhere: 0,
  };
  for (const [id, now] of after) {
    const was = phase.before.get(id) ?? { tokens: 0, requests: 0 };
    const tokens = now.tokens - was.tokens;
    const requests = now.requests - was.requests;
    if (!used.has(id)) {
      out.elsewhere += tokens;
      continue;
    }
    out.tokens += tokens;
    out.requests += requests;
    if (tokens > 0) out.keysCharged++;
    out.minRequests = Math.min(out.minRequests, requests);
    out.maxRequests = Math.max(out.maxRequests, requests);
  }
  if (out.minRequests === Number.POSITIVE_INFINITY) out.minRequests = 0;
  return out;
}

/** Waits for the instances' flushes, then compares; `elsewhere` goes to `warnings`. */
export async function checkPhaseTokens(
  phase: PhaseTokens,
  warnings: string[],
): Promise<PgTokenCheck> {
  const started = Date.now();
  await Bun.sleep(FLUSH_WAIT_MS);
  for (;;) {
    const [up, after] = await Promise.all([mockStats(phase.upstream), phase.readTotals()]);
    const g = gained(phase, after);
    const settled = up.tokensReported === g.tokens && up.requests === g.requests;
    if (settled || Date.now() - started > FLUSH_WAIT_MS + SETTLE_LIMIT_MS) {
      if (g.elsewhere !== 0) {
        warnings.push(
          `${phase.label}: ${g.elsewhere} tokens were charged to keys the phase did not send`,
        );
      }
      return {
        upstreamTokens: up.tokensReported,
        upstreamRequests: up.requests,
        chargedTokens: g.tokens,
        chargedRequests: g.requests,
        clientOk: phase.clientOk,
        lostTokens: Math.max(0, up.tokensReported - g.tokens),
        doubledTokens: Math.max(0, g.tokens - up.tokensReported),
        settleMs: Date.now() - started,
        keysUsed: phase.keyIds.length,
        keysCharged: g.keysCharged,
        requestsPerKey: { min: g.minRequests, max: g.maxRequests },
      };
    }
    await Bun.sleep(POLL_MS);
  }
}
