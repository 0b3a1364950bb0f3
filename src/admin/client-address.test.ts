import { describe, expect, test } from "bun:test";
import {
  canonicalAddress,
  checkProxyEntry,
  clientAddress,
  limiterKey,
  TrustedProxies,
} from "./client-address.ts";

describe("checkProxyEntry", () => {
  for (const ok of ["10.0.0.1", "10.0.0.0/8", "0.0.0.0/0", "::1", "fd00::/8", "2001:db8::/128"]) {
    test(`accepts ${ok}`, () => expect(checkProxyEntry(ok)).toBeNull());
  }
  for (const bad of [
    "",
    "localhost",
    "10.0.0.300",
    "10.0.0.0/33",
    "::/129",
    "10.0.0.0/x",
    "1.2.3.4/8/8",
  ]) {
    test(`refuses ${JSON.stringify(bad)}`, () => expect(checkProxyEntry(bad)).toContain(bad));
  }
});

describe("canonicalAddress", () => {
  const cases: Array<[string, string | null]> = [
    ["127.0.0.1", "127.0.0.1"],
    ["::ffff:127.0.0.1", "127.0.0.1"],
    ["  203.0.113.7 ", "203.0.113.7"],
    ["203.0.113.7:51234", "203.0.113.7"],
    ["[2001:DB8::1]:443", "2001:db8::1"],
    ["fe80::1%eth0", "fe80::1"],
    ["unknown", null],
    ["", null],
  ];
  for (const [raw, want] of cases)
    test(JSON.stringify(raw), () => expect(canonicalAddress(raw)).toBe(want));
});

describe("clientAddress", () => {
  const proxies = new TrustedProxies(["10.0.0.0/8", "fd00::/8"]);
  const cases: Array<[string, string, string | undefined, string]> = [
    [
      "no proxies trusted: the peer, whatever the header says",
      "10.0.0.5",
      "198.51.100.1",
      "10.0.0.5",
    ],
    ["untrusted peer: its header is ignored", "203.0.113.9", "198.51.100.1", "203.0.113.9"],
    ["trusted peer: the entry it appended", "10.0.0.5", "198.51.100.1", "198.51.100.1"],
    [
      "a client's own entries on the left are not believed",
      "10.0.0.5",
      "6.6.6.6, 198.51.100.1",
      "198.51.100.1",
    ],
    [
      "a chain of trusted proxies is walked through",
      "10.0.0.5",
      "198.51.100.1, 10.9.9.9, fd00::7",
      "198.51.100.1",
    ],
    ["trusted peer without the header: the peer", "10.0.0.5", undefined, "10.0.0.5"],
    ["every entry trusted: the peer", "10.0.0.5", "10.1.1.1", "10.0.0.5"],
    [
      "a malformed entry stops the walk at the peer",
      "10.0.0.5",
      "198.51.100.1, garbage",
      "10.0.0.5",
    ],
    ["IPv4-mapped peer and entries", "::ffff:10.0.0.5", "::ffff:198.51.100.1", "198.51.100.1"],
    ["IPv6 client", "fd00::1", "2001:db8:1:2::99", "2001:db8:1:2::99"],
  ];
  for (const [name, peer, xff, want] of cases) {
    test(name, () => {
      const trusted = name.startsWith("no proxies") ? new TrustedProxies([]) : proxies;
      expect(clientAddress(peer, xff, trusted)).toBe(want);
    });
  }
});

describe("limiterKey", () => {
  test("IPv4 as it is; IPv6 by its /64, however it is written", () => {
    expect(limiterKey("198.51.100.1")).toBe("198.51.100.1");
    expect(limiterKey("2001:db8:1:2::1")).toBe("2001:db8:1:2::/64");
    expect(limiterKey("2001:0db8:0001:0002:ffff:ffff:ffff:ffff")).toBe("2001:db8:1:2::/64");
    expect(limiterKey("2001:db8::")).toBe("2001:db8:0:0::/64");
    expect(limiterKey("::1")).toBe("0:0:0:0::/64");
    expect(limiterKey("64:ff9b::192.0.2.1")).toBe("64:ff9b:0:0::/64");
    expect(limiterKey("2001:db8:1:3::1")).not.toBe(limiterKey("2001:db8:1:2::1"));
    expect(limiterKey("unknown")).toBe("unknown");
  });
});
