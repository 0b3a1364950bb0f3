/**
 * A mock LLM upstream served over real HTTP on 127.0.0.1, speaking just enough of
 * the OpenAI (`/v4`) and Anthropic (`/anthropic`) dialects for the official SDKs
 * to parse every answer. Tests and the benchmark both use it, so it is built to
 * be cheap per request: no logging, no pretty printing, frames from templates.
 *
 * `tokensReported` counts only usage that was actually handed to the socket, so
 * a caller can compare it with what the gateway charged. For Anthropic streams
 * that is the moment message_delta goes out (a stream cut earlier counts 0).
 *
 * Per-request controls, as request headers:
 *   x-mock-status: N              answer N with a dialect-shaped error, no usage
 *   x-mock-delay-ms: N            wait before the response headers
 *   x-mock-chunk-delay-ms: N      wait between stream frames
 *   x-mock-pause-ms: N            one pause after the first content chunk
 *   x-mock-prompt-tokens: N       prompt / input tokens (default 11)
 *   x-mock-completion-tokens: N   completion / output tokens = content chunks (5),
 *                                 never more than the body's max_tokens (or
 *                                 max_completion_tokens / max_output_tokens)
 *   x-mock-no-usage: 1            no usage anywhere
 *   x-mock-drop-after: N          cut the connection after at most N content
 *                                 chunks, before any usage
 *   x-mock-account-headers: 1     add the upstream account's own headers
 *   x-mock-refusal: NAME          answer 429 with a real upstream refusal:
 *                                 zai-1302, zai-1308, openai-rate-short,
 *                                 openai-rate-long, openai-quota,
 *                                 anthropic-rate-short, anthropic-rate-long
 *                                 (rate limits, organisation, set-cookie)
 * A chat stream asked for `stream_options.continuous_usage_stats` (as vLLM
 * offers) carries the cumulative usage on every chunk.
 * Anthropic answers also report cache_creation 3 and cache_read 2 tokens.
 * Control routes: GET /__mock/stats, POST /__mock/reset, GET /__mock/requests.
 */
import type { Server } from "bun";

/**
 * The control headers above. The gateway forwards only allowlisted request
 * headers, so a gateway under test is configured to pass these on
 * (`EXTRA_REQUEST_HEADERS`), as an operator would add a header of their own.
 */
export const MOCK_CONTROL_HEADERS = [
  "x-mock-status",
  "x-mock-delay-ms",
  "x-mock-chunk-delay-ms",
  "x-mock-pause-ms",
  "x-mock-prompt-tokens",
  "x-mock-completion-tokens",
  "x-mock-no-usage",
  "x-mock-drop-after",
  "x-mock-account-headers",
  "x-mock-refusal",
  // Tests tag requests to find them among `requests`.
  "x-test-tag",
].join(",");

export interface RecordedRequest {
  method: string;
  /** Path including the query string. */
  path: string;
  /** Lowercase header names. */
  headers: Record<string, string>;
  /** Parsed JSON body, or null when there was none or it was not JSON. */
  body: unknown;
  bodyBytes: number;
  /** The body as received, as text (null without one). */
  text: string | null;
}

export interface MockUpstreamOptions {
  /** Keep every request in `requests` (default true). Turn off under load. */
  record?: boolean;
  /** Port to bind; 0 (default) picks a free one. */
  port?: number;
}

export interface MockUpstream {
  url: string;
  port: number;
  openaiBase: string;
  anthropicBase: string;
  requests: RecordedRequest[];
  /** Sum of total tokens in usage the mock actually wrote. */
  readonly tokensReported: number;
  /** Requests served on the API routes (counted even when not recording). */
  readonly requestCount: number;
  /** Most requests under way at once (from arrival to response headers). */
  readonly maxConcurrent: number;
  reset(): void;
  stop(): Promise<void>;
}

/** Per-request behaviour, read from `x-mock-*` request headers. */
interface Controls {
  status: number;
  delayMs: number;
  chunkDelayMs: number;
  pauseMs: number;
  promptTokens: number | undefined;
  completionTokens: number | undefined;
  noUsage: boolean;
  dropAfter: number | undefined;
}

/**
 * One SSE frame; `tokens` is the usage total it carries, counted when it is sent.
 * `kind` places it before, among or after the content chunks, which is what
 * x-mock-pause-ms and x-mock-drop-after key on.
 */
interface Frame {
  text: string;
  kind: "pre" | "content" | "post";
  tokens: number;
}

type Dialect = "openai" | "anthropic";

interface State {
  tokensReported: number;
  requestCount: number;
  record: boolean;
  requests: RecordedRequest[];
  seq: number;
  current: number;
  maxConcurrent: number;
}

const DEFAULTS = {
  promptTokens: 11,
  completionTokens: 5,
  cacheCreation: 3,
  cacheRead: 2,
} as const;

const JSON_HEADERS = { "content-type": "application/json" };
const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
};
const encoder = new TextEncoder();
/**
 * How long a drop waits for the chunks before it to reach the gateway. A cut
 * resets the connection, and data the gateway has not read yet is lost with
 * it: at load 12 on two cores 20 ms was once too short.
 */
const DROP_FLUSH_MS = 250;
const decoder = new TextDecoder();

const MODELS_BODY = JSON.stringify({
  object: "list",
  data: ["glm-4.7", "glm-4.6", "glm-4.5-air"].map((id) => ({
    id,
    object: "model",
    created: 1_700_000_000,
    owned_by: "mock",
  })),
});

// Token texts are reused by every response, so build them once.
const tokenTexts: string[] = [];
function tokenText(i: number): string {
  let text = tokenTexts[i];
  if (text === undefined) {
    text = `tok${i} `;
    tokenTexts[i] = text;
  }
  return text;
}

function contentText(n: number): string {
  let out = "";
  for (let i = 0; i < n; i++) out += tokenText(i);
  return out;
}

function intHeader(headers: Headers, name: string): number | undefined {
  const raw = headers.get(name);
  if (raw === null) return undefined;
  const n = Number(raw);
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined;
}

function readControls(headers: Headers): Controls {
  return {
    status: intHeader(headers, "x-mock-status") ?? 200,
    delayMs: intHeader(headers, "x-mock-delay-ms") ?? 0,
    chunkDelayMs: intHeader(headers, "x-mock-chunk-delay-ms") ?? 0,
    pauseMs: intHeader(headers, "x-mock-pause-ms") ?? 0,
    promptTokens: intHeader(headers, "x-mock-prompt-tokens"),
    completionTokens: intHeader(headers, "x-mock-completion-tokens"),
    noUsage: headers.get("x-mock-no-usage") === "1",
    dropAfter: intHeader(headers, "x-mock-drop-after"),
  };
}

const ERROR_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  413: "request_too_large",
  429: "rate_limit_error",
  500: "api_error",
  529: "overloaded_error",
};

function errorResponse(dialect: Dialect, status: number, message: string): Response {
  const type = ERROR_TYPES[status] ?? (status >= 500 ? "api_error" : "invalid_request_error");
  const body =
    dialect === "anthropic"
      ? { type: "error", error: { type, message } }
      : { error: { message, type, code: String(status) } };
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

/** When a `zai-1308` refusal says the plan resets: two hours on, in Z.AI's zoneless UTC+8. */
export function mockPlanResetAt(now = Date.now()): number {
  return Math.floor((now + 2 * 3_600_000) / 1000) * 1000;
}

function zaiWallClock(at: number): string {
  return new Date(at + 8 * 3_600_000).toISOString().slice(0, 19).replace("T", " ");
}

/** The upstreams' refusals as their documentation gives them (see src/proxy/upstream-refusals.ts). */
function refusalResponse(name: string): Response {
  const json = (body: unknown, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { status: 429, headers: { ...JSON_HEADERS, ...headers } });
  const openaiRate = (reset: string) =>
    json(
      {
        error: {
          message:
            "Rate limit reached for glm-4.7 in organization org-mock on requests per min (RPM): Limit 3, Used 3, Requested 1.",
          type: "requests",
          param: null,
          code: "rate_limit_exceeded",
        },
      },
      { "x-ratelimit-reset-requests": reset },
    );
  const anthropicRate = (retryAfter: string) =>
    json(
      {
        type: "error",
        error: {
          type: "rate_limit_error",
          message: "This request would exceed your organization's rate limit.",
        },
      },
      { "retry-after": retryAfter },
    );
  switch (name) {
    case "zai-1302":
      return json({
        error: {
          code: "1302",
          message:
            "High concurrency usage of this API, please reduce concurrency or contact customer service to increase limits",
        },
      });
    case "zai-1308":
      return json({
        error: {
          code: "1308",
          message: `Usage limit reached for 5 hour. Your limit will reset at ${zaiWallClock(mockPlanResetAt())}`,
        },
      });
    case "openai-rate-short":
      return openaiRate("1s");
    case "openai-rate-long":
      return openaiRate("3h0m0s");
    case "openai-quota":
      return json({
        error: {
          message: "You exceeded your current quota, please check your plan and billing details.",
          type: "insufficient_quota",
          param: null,
          code: "insufficient_quota",
        },
      });
    case "anthropic-rate-short":
      return anthropicRate("1");
    case "anthropic-rate-long":
      return anthropicRate("7200");
    default:
      return errorResponse("openai", 400, `unknown x-mock-refusal ${name}`);
  }
}

function jsonResponse(body: unknown): Response {
  return new Response(JSON.stringify(body), { headers: JSON_HEADERS });
}

/**
 * Streams frames to the client. Without timing controls everything goes out in
 * one chunked write (the benchmark path); otherwise frames are paced one per
 * pull, and a drop errors the stream so the connection is cut mid-body.
 */
function sseResponse(frames: Frame[], ctl: Controls, state: State): Response {
  const paced = ctl.chunkDelayMs > 0 || ctl.pauseMs > 0 || ctl.dropAfter !== undefined;
  if (!paced) {
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        let text = "";
        for (const frame of frames) {
          text += frame.text;
          state.tokensReported += frame.tokens;
        }
        controller.enqueue(encoder.encode(text));
        controller.close();
      },
    });
    return new Response(stream, { headers: SSE_HEADERS });
  }
  let next = 0;
  let contentSent = 0;
  let pauseDue = false;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const frame = frames[next];
      let wait = next > 0 ? ctl.chunkDelayMs : 0;
      if (pauseDue) {
        wait += ctl.pauseMs;
        pauseDue = false;
      }
      if (wait > 0) await Bun.sleep(wait);
      if (frame === undefined) {
        controller.close();
        return;
      }
      // Cut before the next content chunk, or before the end of the stream when
      // there were fewer content chunks than asked: either way, never any usage.
      const cut =
        ctl.dropAfter !== undefined &&
        (frame.kind === "post" || (frame.kind === "content" && contentSent >= ctl.dropAfter));
      if (cut) {
        // Erroring at once would discard chunks still queued for the socket; give
        // them a moment to go out so the client really sees N chunks, then cut.
        await Bun.sleep(DROP_FLUSH_MS);
        controller.error(new Error("mock upstream dropped the connection"));
        return;
      }
      next++;
      controller.enqueue(encoder.encode(frame.text));
      state.tokensReported += frame.tokens;
      if (frame.kind === "content") {
        contentSent++;
        pauseDue = contentSent === 1 && ctl.pauseMs > 0;
      }
    },
  });
  return new Response(stream, { headers: SSE_HEADERS });
}

/** Like a real model, never more output than the request's cap allows. */
function withinCap(body: Record<string, unknown>, tokens: number): number {
  let out = tokens;
  for (const f of ["max_tokens", "max_completion_tokens", "max_output_tokens"]) {
    const v = body[f];
    if (typeof v === "number" && Number.isInteger(v) && v > 0) out = Math.min(out, v);
  }
  return out;
}

function modelOf(body: Record<string, unknown>): string {
  return typeof body.model === "string" ? body.model : "mock-model";
}

// ---- OpenAI dialect ----

function openaiChat(body: Record<string, unknown>, ctl: Controls, state: State): Response {
  const id = `chatcmpl-mock${++state.seq}`;
  const created = Math.floor(Date.now() / 1000);
  const model = modelOf(body);
  const prompt = ctl.promptTokens ?? DEFAULTS.promptTokens;
  const completion = withinCap(body, ctl.completionTokens ?? DEFAULTS.completionTokens);
  const total = prompt + completion;
  const usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total };

  if (body.stream !== true) {
    if (!ctl.noUsage) state.tokensReported += total;
    return jsonResponse({
      id,
      object: "chat.completion",
      created,
      model,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: contentText(completion), refusal: null },
          logprobs: null,
          finish_reason: "stop",
        },
      ],
      ...(ctl.noUsage ? {} : { usage }),
    });
  }

  const options = body.stream_options as
    | { include_usage?: unknown; continuous_usage_stats?: unknown }
    | undefined;
  const withUsage = options?.include_usage === true && !ctl.noUsage;
  // OpenAI puts "usage": null on every chunk once the client asked for usage.
  // With `continuous_usage_stats` (vLLM), every chunk carries the usage so far.
  const continuous = withUsage && options?.continuous_usage_stats === true;
  const usageNull = withUsage ? ',"usage":null' : "";
  const usageSoFar = (n: number) =>
    `,"usage":{"prompt_tokens":${prompt},"completion_tokens":${n},"total_tokens":${prompt + n}}`;
  const head = `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"system_fingerprint":null,"choices":[`;
  const frames: Frame[] = [];
  for (let i = 0; i < completion; i++) {
    const role = i === 0 ? '"role":"assistant",' : "";
    frames.push({
      text: `${head}{"index":0,"delta":{${role}"content":"${tokenText(i)}"},"logprobs":null,"finish_reason":null}]${continuous ? usageSoFar(i + 1) : usageNull}}\n\n`,
      kind: "content",
      tokens: 0,
    });
  }
  frames.push({
    text: `${head}{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]${continuous ? usageSoFar(completion) : usageNull}}\n\n`,
    kind: "post",
    tokens: 0,
  });
  if (withUsage) {
    frames.push({
      text: `${head}],"usage":${JSON.stringify(usage)}}\n\n`,
      kind: "post",
      tokens: total,
    });
  }
  frames.push({ text: "data: [DONE]\n\n", kind: "post", tokens: 0 });
  return sseResponse(frames, ctl, state);
}

function openaiEmbeddings(body: Record<string, unknown>, ctl: Controls, state: State): Response {
  const input = body.input;
  // A list of strings (or of token arrays) is several inputs; anything else is one.
  const count =
    Array.isArray(input) && input.length > 0 && typeof input[0] !== "number" ? input.length : 1;
  const prompt = ctl.promptTokens ?? DEFAULTS.promptTokens;
  if (!ctl.noUsage) state.tokensReported += prompt;
  const data = [];
  for (let i = 0; i < count; i++) {
    data.push({
      object: "embedding",
      index: i,
      embedding: [0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, i],
    });
  }
  return jsonResponse({
    object: "list",
    data,
    model: modelOf(body),
    ...(ctl.noUsage ? {} : { usage: { prompt_tokens: prompt, total_tokens: prompt } }),
  });
}

// ---- Anthropic dialect ----

function sse(event: string, data: string): string {
  return `event: ${event}\ndata: ${data}\n\n`;
}

const PING = sse("ping", '{"type":"ping"}');
const BLOCK_START = sse(
  "content_block_start",
  '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
);
const BLOCK_STOP = sse("content_block_stop", '{"type":"content_block_stop","index":0}');
const MESSAGE_STOP = sse("message_stop", '{"type":"message_stop"}');

function anthropicMessages(body: Record<string, unknown>, ctl: Controls, state: State): Response {
  const id = `msg_mock${++state.seq}`;
  const model = modelOf(body);
  const input = ctl.promptTokens ?? DEFAULTS.promptTokens;
  const output = withinCap(body, ctl.completionTokens ?? DEFAULTS.completionTokens);
  const cacheCreation = DEFAULTS.cacheCreation;
  const cacheRead = DEFAULTS.cacheRead;
  const total = input + output + cacheCreation + cacheRead;

  if (body.stream !== true) {
    if (!ctl.noUsage) state.tokensReported += total;
    return jsonResponse({
      id,
      type: "message",
      role: "assistant",
      model,
      content: [{ type: "text", text: contentText(output) }],
      stop_reason: "end_turn",
      stop_sequence: null,
      ...(ctl.noUsage
        ? {}
        : {
            usage: {
              input_tokens: input,
              output_tokens: output,
              cache_creation_input_tokens: cacheCreation,
              cache_read_input_tokens: cacheRead,
            },
          }),
    });
  }

  // Like the real API, message_start reports the input side with output_tokens 1,
  // and message_delta carries the cumulative output count at the end.
  const startUsage = ctl.noUsage
    ? ""
    : `,"usage":{"input_tokens":${input},"cache_creation_input_tokens":${cacheCreation},"cache_read_input_tokens":${cacheRead},"output_tokens":1}`;
  const frames: Frame[] = [
    {
      text: sse(
        "message_start",
        `{"type":"message_start","message":{"id":"${id}","type":"message","role":"assistant","model":${JSON.stringify(model)},"content":[],"stop_reason":null,"stop_sequence":null${startUsage}}}`,
      ),
      kind: "pre",
      tokens: 0,
    },
    { text: PING, kind: "pre", tokens: 0 },
    { text: BLOCK_START, kind: "pre", tokens: 0 },
  ];
  for (let i = 0; i < output; i++) {
    frames.push({
      text: sse(
        "content_block_delta",
        `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"${tokenText(i)}"}}`,
      ),
      kind: "content",
      tokens: 0,
    });
  }
  frames.push({ text: BLOCK_STOP, kind: "post", tokens: 0 });
  const deltaUsage = ctl.noUsage ? "" : `,"usage":{"output_tokens":${output}}`;
  frames.push({
    text: sse(
      "message_delta",
      `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null}${deltaUsage}}`,
    ),
    kind: "post",
    tokens: ctl.noUsage ? 0 : total,
  });
  frames.push({ text: MESSAGE_STOP, kind: "post", tokens: 0 });
  return sseResponse(frames, ctl, state);
}

function anthropicCountTokens(ctl: Controls): Response {
  // A count is not usage: nothing is added to tokensReported.
  return jsonResponse({ input_tokens: ctl.promptTokens ?? DEFAULTS.promptTokens });
}

// ---- routing ----

type Handler = (body: Record<string, unknown>, ctl: Controls, state: State) => Response;

const POST_ROUTES: Record<string, Handler> = {
  "/v4/chat/completions": openaiChat,
  "/v4/embeddings": openaiEmbeddings,
  "/anthropic/v1/messages": anthropicMessages,
  "/anthropic/v1/messages/count_tokens": (_body, ctl) => anthropicCountTokens(ctl),
};

function dialectOf(pathname: string): Dialect {
  return pathname.startsWith("/anthropic/") ? "anthropic" : "openai";
}

function parseBody(bytes: ArrayBuffer): unknown {
  if (bytes.byteLength === 0) return null;
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch {
    return null;
  }
}

function mockControlRoute(req: Request, pathname: string, state: State): Response | undefined {
  if (pathname === "/__mock/stats" && req.method === "GET") {
    return jsonResponse({ tokensReported: state.tokensReported, requests: state.requestCount });
  }
  if (pathname === "/__mock/reset" && req.method === "POST") {
    resetState(state);
    return jsonResponse({ ok: true });
  }
  if (pathname === "/__mock/requests" && req.method === "GET") {
    return jsonResponse(state.requests);
  }
  return undefined;
}

function resetState(state: State): void {
  state.tokensReported = 0;
  state.requestCount = 0;
  state.maxConcurrent = 0;
  state.requests.length = 0;
}

async function handle(req: Request, state: State): Promise<Response> {
  // Slicing the URL is cheaper than constructing a URL object on every request.
  const full = req.url;
  const path = full.slice(full.indexOf("/", full.indexOf("//") + 2));
  const q = path.indexOf("?");
  const pathname = q === -1 ? path : path.slice(0, q);

  if (pathname.startsWith("/__mock/")) {
    return mockControlRoute(req, pathname, state) ?? errorResponse("openai", 404, "no such route");
  }

  state.requestCount++;
  const bytes = req.method === "GET" || req.method === "HEAD" ? null : await req.arrayBuffer();
  const body = bytes === null ? null : parseBody(bytes);
  if (state.record) {
    state.requests.push({
      method: req.method,
      path,
      headers: Object.fromEntries(req.headers),
      body,
      bodyBytes: bytes?.byteLength ?? 0,
      text: bytes === null ? null : new TextDecoder().decode(bytes),
    });
  }

  const ctl = readControls(req.headers);
  const dialect = dialectOf(pathname);
  if (ctl.delayMs > 0) await Bun.sleep(ctl.delayMs);
  if (ctl.status >= 400) return errorResponse(dialect, ctl.status, `mock error ${ctl.status}`);
  const refusal = req.headers.get("x-mock-refusal");
  if (refusal !== null) return refusalResponse(refusal);

  if (req.method === "GET" && pathname === "/v4/models") {
    return new Response(MODELS_BODY, { headers: JSON_HEADERS });
  }
  const handler = req.method === "POST" ? POST_ROUTES[pathname] : undefined;
  if (handler === undefined)
    return errorResponse(dialect, 404, `no route ${req.method} ${pathname}`);
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return errorResponse(dialect, 400, "request body must be a JSON object");
  }
  return handler(body as Record<string, unknown>, ctl, state);
}

/**
 * `x-mock-account-headers: 1`: the answer also carries what a real upstream
 * says about its own account (rate-limit figures, organisation, a cookie).
 */
function withAccountHeaders(req: Request, res: Response): Response {
  if (req.headers.get("x-mock-account-headers") !== "1") return res;
  res.headers.set("set-cookie", "upstream_session=secret; Path=/");
  res.headers.set("openai-organization", "operator-org");
  res.headers.set("x-ratelimit-limit-requests", "10000");
  res.headers.set("x-ratelimit-remaining-requests", "9999");
  res.headers.set("anthropic-ratelimit-requests-remaining", "9999");
  res.headers.set("retry-after", "7");
  return res;
}

export async function startMockUpstream(options: MockUpstreamOptions = {}): Promise<MockUpstream> {
  const state: State = {
    tokensReported: 0,
    requestCount: 0,
    record: options.record ?? true,
    requests: [],
    seq: 0,
    current: 0,
    maxConcurrent: 0,
  };
  const server: Server<undefined> = Bun.serve({
    hostname: "127.0.0.1",
    port: options.port ?? 0,
    development: false,
    // Bun's 10 s default would cut long x-mock-pause-ms streams.
    idleTimeout: 0,
    fetch: async (req) => {
      state.maxConcurrent = Math.max(state.maxConcurrent, ++state.current);
      try {
        return withAccountHeaders(req, await handle(req, state));
      } finally {
        state.current--;
      }
    },
  });
  const url = `http://127.0.0.1:${server.port}`;
  return {
    url,
    port: server.port ?? 0,
    openaiBase: `${url}/v4`,
    anthropicBase: `${url}/anthropic`,
    requests: state.requests,
    get tokensReported() {
      return state.tokensReported;
    },
    get requestCount() {
      return state.requestCount;
    },
    get maxConcurrent() {
      return state.maxConcurrent;
    },
    reset: () => resetState(state),
    stop: () => server.stop(true),
  };
}
