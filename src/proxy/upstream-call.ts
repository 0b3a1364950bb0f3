import { readWhole } from "./read-whole.ts";
import { classifyRefusal, type Refusal } from "./upstream-refusals.ts";

// One call upstream, as the client sees it: a 429 of the upstream's own is
// read and classified. Too many requests at once is tried once more after a
// short wait; a spent plan, or a second refusal, is a refusal the gateway
// answers in its own words. Neither is charged.

export type UpstreamCall =
  | {
      ok: true;
      response: Response;
      /** The body, when it had to be read already (a 429 that was not a refusal). */
      preread?: Uint8Array;
    }
  | { ok: false; refusal: Refusal };

/** A busy upstream is tried once more when it names a wait no longer than this. */
const BUSY_RETRY_MAX_WAIT_MS = 2_000;
/** The least wait before that one retry. */
const BUSY_RETRY_MIN_MS = 250;

const decoder = new TextDecoder();

export async function callUpstream(
  send: () => Promise<Response>,
  idleMs: number,
  abort: AbortController,
  clock: () => number,
): Promise<UpstreamCall> {
  let response = await send();
  if (response.status !== 429) return { ok: true, response };
  let preread = await readWhole(response, idleMs, abort);
  let refusal = classifyRefusal(429, response.headers, decoder.decode(preread), clock());
  if (refusal?.kind === "busy" && refusal.waitMs <= BUSY_RETRY_MAX_WAIT_MS) {
    await Bun.sleep(Math.max(BUSY_RETRY_MIN_MS, refusal.waitMs));
    response = await send();
    if (response.status !== 429) return { ok: true, response };
    preread = await readWhole(response, idleMs, abort);
    refusal = classifyRefusal(429, response.headers, decoder.decode(preread), clock());
  }
  return refusal ? { ok: false, refusal } : { ok: true, response, preread };
}
