import { readFileSync } from "node:fs";
import { extname, join } from "node:path";
import { packagePath } from "../package-root.ts";

/** A static file, read once at start-up and served from memory. */
export interface Asset {
  body: Uint8Array;
  contentType: string;
  /** Strong validator: a hash of the bytes, so a new release invalidates caches. */
  etag: string;
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

const STATIC_DIR = packagePath("src", "web", "static");

export function loadAsset(name: string): Asset {
  const contentType = CONTENT_TYPES[extname(name)];
  if (contentType === undefined) throw new Error(`no content type for web asset ${name}`);
  const body = new Uint8Array(readFileSync(join(STATIC_DIR, name)));
  const hash = new Bun.CryptoHasher("sha256").update(body).digest("base64url").slice(0, 22);
  return { body, contentType, etag: `"${hash}"` };
}

/** Whether an If-None-Match header names this ETag (RFC 9110 §13.1.2, weak comparison). */
export function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  if (ifNoneMatch.trim() === "*") return true;
  return ifNoneMatch.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}
