import { BlockList, isIP } from "node:net";

// Who is on the other end of an admin request, when reverse proxies may stand
// between. Forwarding headers are anyone's to write, so they are believed only
// from a peer the operator named in TRUSTED_PROXIES. Pure: no request objects.

/** One TRUSTED_PROXIES entry checked: an address or a CIDR range, or why not. */
export function checkProxyEntry(entry: string): string | null {
  const [address = "", prefix, ...rest] = entry.split("/");
  const family = isIP(address);
  if (family === 0 || rest.length > 0) {
    return `"${entry}" is not an IP address or CIDR range (e.g. 10.0.0.0/8, 192.168.1.10, fd00::/8)`;
  }
  if (prefix !== undefined) {
    const max = family === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) {
      return `"${entry}": the prefix length must be 0 to ${max}`;
    }
  }
  return null;
}

/** The TRUSTED_PROXIES list as a lookup; an empty list trusts no one. */
export class TrustedProxies {
  private readonly list = new BlockList();
  readonly empty: boolean;

  /** `entries` must have passed `checkProxyEntry` (config does that at start-up). */
  constructor(entries: readonly string[]) {
    this.empty = entries.length === 0;
    for (const entry of entries) {
      const [address = "", prefix] = entry.split("/");
      const type = isIP(address) === 4 ? "ipv4" : "ipv6";
      if (prefix === undefined) this.list.addAddress(address, type);
      else this.list.addSubnet(address, Number(prefix), type);
    }
  }

  trusts(address: string): boolean {
    if (this.empty) return false;
    const ip = canonicalAddress(address);
    const family = ip === null ? 0 : isIP(ip);
    return family !== 0 && this.list.check(ip as string, family === 4 ? "ipv4" : "ipv6");
  }
}

/**
 * An address as written by a socket or a proxy, reduced to the bare IP:
 * brackets, a port and an IPv6 zone dropped, IPv4-mapped IPv6 as IPv4.
 * Null when it is not an IP address at all.
 */
export function canonicalAddress(raw: string): string | null {
  let s = raw.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(s);
  if (bracketed?.[1]) s = bracketed[1];
  else if (/^[\d.]+:\d+$/.test(s)) s = s.slice(0, s.lastIndexOf(":"));
  s = s.replace(/%.*$/, "").toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (mapped?.[1]) s = mapped[1];
  return isIP(s) === 0 ? null : s;
}

/**
 * The client's address: the socket peer, unless the peer is a trusted proxy;
 * then the right-most X-Forwarded-For entry that is not itself a trusted proxy
 * (entries further left were written by whoever sent the request, and can say
 * anything). With no such entry, or a malformed one, the peer stands.
 */
export function clientAddress(
  peer: string,
  forwardedFor: string | undefined,
  trusted: TrustedProxies,
): string {
  const self = canonicalAddress(peer) ?? peer;
  if (!forwardedFor || !trusted.trusts(self)) return self;
  const hops = forwardedFor.split(",");
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = canonicalAddress(hops[i] ?? "");
    if (hop === null) return self;
    if (!trusted.trusts(hop)) return hop;
  }
  return self;
}

/**
 * What the failed-attempt limit counts against: an IPv4 address, or the /64
 * holding an IPv6 address (one subscriber is usually given a whole /64, so
 * counting single IPv6 addresses would give an attacker 2^64 fresh starts).
 */
export function limiterKey(address: string): string {
  if (isIP(address) !== 6) return address;
  return `${expandIPv6(address).slice(0, 4).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, in lower-case hex without leading zeros. */
function expandIPv6(address: string): string[] {
  let s = address;
  // A trailing dotted IPv4 part (::ffff:1.2.3.4, 64:ff9b::1.2.3.4) is two groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    s = `${s.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = s.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const zeros = tail === undefined ? [] : new Array(8 - left.length - right.length).fill("0");
  return [...left, ...zeros, ...right].map((g) => Number.parseInt(g, 16).toString(16));
}
