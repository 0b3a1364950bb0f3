import type { Context } from "hono";
import {
  canonicalAddress,
  clientAddress,
  limiterKey,
  type TrustedProxies,
} from "../../admin/client-address.ts";

/**
 * Where an admin request came from, and what it was addressed to. The
 * forwarding headers (X-Forwarded-For, -Proto, -Host; de facto standards, see
 * RFC 7239 section 1 for their history) are believed only when the socket's
 * peer is in TRUSTED_PROXIES: anyone else could write them, and the
 * failed-attempt limit and the CSRF origin check would then be theirs to
 * steer.
 */
export interface RequestSource {
  /** The client's address (for logs). */
  address: string;
  /** What the failed-attempt limit counts against (IPv6 by its /64). */
  limiterKey: string;
  /** The socket's peer, when a trusted proxy stood in for the client. */
  proxy?: string;
  /** Whether the browser reached us over https. */
  https: boolean;
  /** The host the browser addressed (host[:port]), lower case. */
  host: string;
}

/** What Bun hands a handler beside the request: the server, which knows each request's peer. */
interface PeerInfo {
  requestIP(req: Request): { address: string } | null;
}

/** The socket's peer; in-process tests (`app.request`) have no socket: "unknown". */
export function peerAddress(server: unknown, req: Request): string {
  const s = server as Partial<PeerInfo> | undefined;
  if (typeof s?.requestIP !== "function") return "unknown";
  const raw = s.requestIP(req)?.address;
  return raw === undefined ? "unknown" : (canonicalAddress(raw) ?? raw);
}

/** The first value of a header a proxy may have sent as a list. */
const first = (v: string | null) => v?.split(",")[0]?.trim() || undefined;

export function requestSource(c: Context, proxies: TrustedProxies): RequestSource {
  return requestSourceOf(c.req.raw, peerAddress(c.env, c.req.raw), proxies);
}

/** The same, from the request and its socket's peer. */
export function requestSourceOf(
  req: Request,
  peer: string,
  proxies: TrustedProxies,
): RequestSource {
  const url = new URL(req.url);
  const header = (name: string) => req.headers.get(name);
  const ownHost = (header("host") ?? url.host).toLowerCase();
  const ownHttps = url.protocol === "https:";
  if (!proxies.trusts(peer)) {
    return { address: peer, limiterKey: limiterKey(peer), https: ownHttps, host: ownHost };
  }
  const address = clientAddress(peer, header("x-forwarded-for") ?? undefined, proxies);
  const proto = first(header("x-forwarded-proto"))?.toLowerCase();
  return {
    address,
    limiterKey: limiterKey(address),
    proxy: peer,
    https: proto === undefined ? ownHttps : proto === "https",
    host: first(header("x-forwarded-host"))?.toLowerCase() ?? ownHost,
  };
}
