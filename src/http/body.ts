import { GatewayError } from "../errors.ts";

/**
 * Reads a request body, refusing it with 413 as soon as it passes `max`
 * bytes: a declared Content-Length is checked before reading anything, and
 * the body is counted as it arrives, so a huge body is never held whole. A
 * body not complete within `deadlineMs` gets a 408 (a client that declares
 * 1,000 bytes and sends one must not hold a connection for ever).
 * The bytes are the caller's own: their buffer is new and no one else holds
 * it (the proxy gives a large body's memory back once it is sent).
 */
export async function readBody(
  req: Request,
  max: number,
  deadlineMs = Number.POSITIVE_INFINITY,
): Promise<Uint8Array | null> {
  const tooLarge = () =>
    new GatewayError("request_too_large", `request body is larger than the limit of ${max} bytes`);
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > max) throw tooLarge();
  if (!req.body) return null;
  // A declared length within the limit is read whole by the runtime, which
  // stops at that length: no JavaScript stream per request (the common case,
  // and a measurable share of the gateway's CPU). Chunked bodies are counted
  // as they arrive, below.
  if (declared !== null) return readDeclared(req, deadlineMs);
  const reader = req.body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    if (Number.isFinite(deadlineMs)) timer = setTimeout(() => resolve("late"), deadlineMs);
  });
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const read = await Promise.race([reader.read(), late]);
      if (read === "late") {
        void reader.cancel().catch(() => {});
        throw bodyLate(deadlineMs);
      }
      if (read.done) break;
      total += read.value.byteLength;
      if (total > max) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(read.value);
    }
  } finally {
    clearTimeout(timer);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

function bodyLate(deadlineMs: number): GatewayError {
  // The rest of the body may still be on its way: this connection is done.
  return new GatewayError("request_timeout", `request body not received within ${deadlineMs} ms`, {
    connection: "close",
  });
}

async function readDeclared(req: Request, deadlineMs: number): Promise<Uint8Array | null> {
  const whole = req.arrayBuffer();
  if (!Number.isFinite(deadlineMs)) return new Uint8Array(await whole);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), deadlineMs);
  });
  try {
    const read = await Promise.race([whole, late]);
    if (read === "late") {
      // The read cannot be cancelled; it ends with the connection we close.
      whole.catch(() => {});
      throw bodyLate(deadlineMs);
    }
    return new Uint8Array(read);
  } finally {
    clearTimeout(timer);
  }
}

const decoder = new TextDecoder("utf-8", { fatal: true });

export interface JsonBody {
  /** The body as text (a leading byte-order mark dropped). */
  text: string;
  value: Record<string, unknown>;
}

/** A JSON object body, or a 400 that says what is wrong with it. */
export function parseJsonObject(bytes: Uint8Array | null): JsonBody {
  if (!bytes || bytes.byteLength === 0) {
    throw new GatewayError("invalid_request", "request body is empty; expected a JSON object");
  }
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new GatewayError("invalid_request", "request body is not valid UTF-8");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // SyntaxError says where; anything else (absurd nesting) gets a plain reason.
    const detail = err instanceof SyntaxError ? err.message : "it cannot be parsed";
    throw new GatewayError("invalid_request", `request body is not valid JSON: ${detail}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new GatewayError("invalid_request", "request body must be a JSON object");
  }
  if (nestedDeeperThan(value, MAX_JSON_DEPTH)) {
    throw new GatewayError(
      "invalid_request",
      `request body is nested too deeply (more than ${MAX_JSON_DEPTH} levels)`,
    );
  }
  return { text, value: value as Record<string, unknown> };
}

/**
 * How deep a request body's JSON may nest. No API request comes near it;
 * a body past it would only be a burden, or an attack, on the upstream's
 * parser (Python's own stops near this depth).
 */
export const MAX_JSON_DEPTH = 1000;

/** Whether `value` nests objects and arrays more than `limit` deep; walked without recursion. */
export function nestedDeeperThan(value: object, limit: number): boolean {
  const nodes: object[] = [value];
  const depths: number[] = [1];
  for (let node = nodes.pop(); node !== undefined; node = nodes.pop()) {
    const depth = depths.pop() as number;
    if (depth > limit) return true;
    if (Array.isArray(node)) {
      for (const child of node) {
        if (typeof child === "object" && child !== null) {
          nodes.push(child);
          depths.push(depth + 1);
        }
      }
      continue;
    }
    const members = node as Record<string, unknown>;
    for (const k in members) {
      const child = members[k];
      if (typeof child === "object" && child !== null) {
        nodes.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}
