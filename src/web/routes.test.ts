import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { webRoutes } from "./routes.ts";

const STATIC = new URL("./static/", import.meta.url);
const withAdmin = webRoutes({ adminEnabled: true });
const withoutAdmin = webRoutes({ adminEnabled: false });

describe("web pages", () => {
  test("both pages carry the security headers and the right content type", async () => {
    for (const path of ["/dashboard", "/usage"]) {
      const res = await withAdmin.request(path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
      const csp = res.headers.get("content-security-policy") ?? "";
      for (const directive of [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
      ]) {
        expect(csp).toContain(directive);
      }
      expect(csp).not.toContain("unsafe-inline");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("referrer-policy")).toBe("no-referrer");
      expect(res.headers.get("x-frame-options")).toBe("DENY");
    }
  });

  test("the dashboard and its scripts are 404 without the admin API; /usage is always on", async () => {
    expect((await withoutAdmin.request("/dashboard")).status).toBe(404);
    expect((await withoutAdmin.request("/web/dashboard.js")).status).toBe(404);
    expect((await withoutAdmin.request("/usage")).status).toBe(200);
    expect((await withoutAdmin.request("/web/usage.js")).status).toBe(200);
  });

  test("assets: content types, nosniff, ETag revalidation", async () => {
    const js = await withAdmin.request("/web/chart.js");
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(js.headers.get("x-content-type-options")).toBe("nosniff");
    expect(js.headers.get("cache-control")).toBe("no-cache");
    const etag = js.headers.get("etag") ?? "";
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await withAdmin.request("/web/chart.js", {
      headers: { "if-none-match": `W/"other", ${etag}` },
    });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    const css = await withAdmin.request("/web/style.css");
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");
    expect((await withAdmin.request("/web/nope.js")).status).toBe(404);
    expect((await withAdmin.request("/web/..%2Froutes.ts")).status).toBe(404);
  });

  test("every file the pages reference is served", async () => {
    for (const page of ["dashboard.html", "usage.html"]) {
      const html = readFileSync(new URL(page, STATIC), "utf8");
      for (const [, src] of html.matchAll(/(?:src|href)="(\/web\/[^"]+)"/g)) {
        expect((await withAdmin.request(src as string)).status).toBe(200);
      }
    }
    for (const file of readdirSync(STATIC).filter((f) => f.endsWith(".js"))) {
      const code = readFileSync(new URL(file, STATIC), "utf8");
      for (const [, dep] of code.matchAll(/from "\.\/([^"]+)"/g)) {
        expect((await withAdmin.request(`/web/${dep}`)).status).toBe(200);
      }
    }
  });

  test("no inline script, inline style or innerHTML anywhere; small", () => {
    let bytes = 0;
    for (const file of readdirSync(STATIC)) {
      const text = readFileSync(new URL(file, STATIC), "utf8");
      if (file.endsWith(".html")) {
        expect(text).not.toMatch(/<script(?![^>]*\bsrc=)/);
        expect(text).not.toMatch(/\sstyle=|<style/);
        expect(text).not.toMatch(/\son[a-z]+=/);
      } else {
        bytes += text.length;
        expect(text).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
      }
    }
    // Scripts and styles of both pages together (the dashboard now has the
    // activity log, the plan panel and weekly limits).
    expect(bytes).toBeLessThan(60_000);
  });
});
