import type { Context } from "hono";
import { getConnInfo } from "hono/bun";
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

/** The socket's peer; in-process tests (`app.request`) have no socket: "unknown". */
function peerAddress(c: Context): string {
  try {
    const raw = getConnInfo(c).remote.address;
    return raw === undefined ? "unknown" : (canonicalAddress(raw) ?? raw);
  } catch {
    return "unknown";
  }
}

/** The first value of a header a proxy may have sent as a list. */
const first = (v: string | undefined) => v?.split(",")[0]?.trim() || undefined;

export function requestSource(c: Context, proxies: TrustedProxies): RequestSource {
  const peer = peerAddress(c);
  const url = new URL(c.req.url);
  const ownHost = (c.req.header("host") ?? url.host).toLowerCase();
  const ownHttps = url.protocol === "https:";
  if (!proxies.trusts(peer)) {
    return { address: peer, limiterKey: limiterKey(peer), https: ownHttps, host: ownHost };
  }
  const address = clientAddress(peer, c.req.header("x-forwarded-for"), proxies);
  const proto = first(c.req.header("x-forwarded-proto"))?.toLowerCase();
  return {
    address,
    limiterKey: limiterKey(address),
    proxy: peer,
    https: proto === undefined ? ownHttps : proto === "https",
    host: first(c.req.header("x-forwarded-host"))?.toLowerCase() ?? ownHost,
  };
}
