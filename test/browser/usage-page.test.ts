/**
 * The key holder's page (/usage) in a real Chromium against a real gateway:
 * a valid key's numbers match /stats, an expired key says so, an unknown key
 * gets a clear error, and the key never reaches a URL or localStorage.
 */

import { expect, setDefaultTimeout, test } from "bun:test";
import type { Browser, Page } from "playwright-core";
import { E2E_TIMEOUT_MS, type GatewayProcess } from "../harness/gateway.ts";
import { describeInBrowser, FLOW_TIMEOUT_MS, newPage, screenshot } from "./browser.ts";
import { admin, createKey, seedHistory, spend } from "./seed.ts";
import { secretSweep, useStage } from "./stage.ts";

// Explicit, for two busy cores: the runner's 5 s default measures the machine.
setDefaultTimeout(E2E_TIMEOUT_MS);

let gw: GatewayProcess;
let browser: Browser;

const integer = new Intl.NumberFormat("en-US");

async function enterKey(page: Page, key: string): Promise<void> {
  await page.goto("/usage");
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Show usage" }).click();
}

async function text(page: Page, selector: string): Promise<string> {
  return (await page.locator(selector).textContent()) ?? "";
}

describeInBrowser("key usage page in a browser", () => {
  useStage((s) => ({ gw, browser } = s));

  test(
    "a valid key: the page shows what /stats says, and the key stays out of URLs and localStorage",
    async () => {
      const expires = new Date(Date.now() + 10 * 86_400_000).toISOString();
      const k = await gw.createKey({ name: "holder", limit: "5k", model: "glm-4.6", expires });
      await spend(gw, k.key, 150);
      await spend(gw, k.key, 250);
      const stats = await gw.statsWhen(k.key, { tokens: 400, requests: 2 });

      const { page, context, problems } = await newPage(browser, gw.url);
      const requested: string[] = [];
      page.on("request", (req) => requested.push(req.url()));
      await enterKey(page, k.key);
      await page.getByRole("heading", { name: "holder" }).waitFor();

      const usage = stats.current_usage;
      expect(await text(page, "#window-used")).toBe(
        integer.format(usage.tokens_used_in_current_window),
      );
      expect(await text(page, "#window-limit")).toBe("5,000");
      expect(await text(page, "#remaining")).toBe(
        `${integer.format(usage.remaining_tokens)} tokens`,
      );
      expect(await text(page, "#lifetime")).toBe("400");
      expect(await text(page, "#requests")).toBe("2");
      expect(await text(page, "#model")).toBe("glm-4.6");
      expect(await text(page, "#key-prefix")).toBe(stats.key);
      expect(await text(page, "#key-status")).toBe("active");
      expect(await text(page, "#expiry")).toContain("expires in 10 days");
      expect(await text(page, "#frees-up")).toMatch(/^from .+ \(in (4 h 5\d min|5 h)\)$/);
      expect(await page.getByRole("meter").getAttribute("aria-valuenow")).toBe("400");
      await page.locator("#chart rect.chart-bar").first().waitFor();
      const charted = await page
        .locator("#chart rect.chart-bar")
        .evaluateAll((bars) => bars.reduce((n, b) => n + Number(b.getAttribute("data-tokens")), 0));
      expect(charted).toBe(400);

      // The key went out in a header only; nothing but sessionStorage holds it.
      expect(page.url()).toBe(`${gw.url}/usage`);
      expect(requested.some((url) => url.includes(k.key) || url.includes("?api_key"))).toBe(false);
      const stored = await page.evaluate(() => ({
        local: localStorage.length,
        session: sessionStorage.getItem("tollgate.usage.key"),
      }));
      expect(stored).toEqual({ local: 0, session: k.key });
      expect(await page.getByLabel("API key").inputValue()).toBe("");
      expect(gw.stdout).not.toContain(k.key);

      // The tab remembers it across a reload; "Forget key" drops it.
      await page.reload();
      await page.getByRole("heading", { name: "holder" }).waitFor();
      await page.getByRole("button", { name: "Forget key" }).click();
      await page.getByLabel("API key").waitFor();
      expect(await page.evaluate(() => sessionStorage.length + localStorage.length)).toBe(0);
      expect(problems).toEqual([]);
      await context.close();
    },
    FLOW_TIMEOUT_MS,
  );

  test("an expired key still sees its usage, marked expired", async () => {
    // The CLI refuses a past expiry; the admin API can still record one.
    const k = await createKey(gw, {
      name: "old",
      token_limit_per_5h: 1000,
      expires_at: "2020-01-01T00:00:00.000Z",
    });
    const { page, context, problems } = await newPage(browser, gw.url);
    await enterKey(page, k.key);
    await page.getByRole("heading", { name: "old" }).waitFor();
    expect(await text(page, "#key-status")).toBe("expired");
    const note = page.locator("#status-note");
    expect(await note.isVisible()).toBe(true);
    expect(await note.textContent()).toContain("expired");
    expect(await note.textContent()).toContain("refused");
    expect(await text(page, "#expiry")).toContain("expired");
    expect(problems).toEqual([]);
    await context.close();
  });

  test("a disabled key is marked disabled, not active, and told it is refused", async () => {
    // Disabled and also expired: disabled is what the holder must hear about.
    const k = await createKey(gw, { name: "switched off", token_limit_per_5h: 1000 });
    const both = await createKey(gw, {
      name: "off and old",
      token_limit_per_5h: 1000,
      expires_at: "2020-01-01T00:00:00.000Z",
    });
    for (const key of [k, both]) {
      await admin(gw, "PATCH", `/admin/keys/${key.id}`, { disabled: true });
    }
    for (const key of [k, both]) {
      const { page, context, problems } = await newPage(browser, gw.url);
      await enterKey(page, key.key);
      await page.getByRole("heading", { name: key.name }).waitFor();
      const status = page.locator("#key-status");
      expect(await status.textContent()).toBe("disabled");
      expect(await status.getAttribute("class")).not.toContain("badge-ok");
      const note = page.locator("#status-note");
      expect(await note.isVisible()).toBe(true);
      expect(await note.textContent()).toContain("disabled");
      expect(await note.textContent()).toContain("refused");
      expect(problems).toEqual([]);
      await context.close();
    }
  });

  test("an unknown key gets a clear error and is not kept", async () => {
    const { page, context, problems } = await newPage(browser, gw.url);
    await enterKey(page, `pk_${"x".repeat(43)}`);
    const error = page.getByRole("alert");
    await error.getByText("not known to this gateway").waitFor();
    expect(await page.locator("#result").isHidden()).toBe(true);
    expect(await page.evaluate(() => sessionStorage.length + localStorage.length)).toBe(0);
    expect(page.url()).toBe(`${gw.url}/usage`);
    expect(problems).toEqual([]);
    await context.close();
  });

  test(
    "screenshots at desktop and phone widths",
    async () => {
      const k = await gw.createKey({ name: "alice", limit: "200k", expires: "45d" });
      seedHistory(gw, k.id, 9_000, 7);
      await spend(gw, k.key, 12_000);
      for (const viewport of ["desktop", "phone"] as const) {
        const { page, context, problems } = await newPage(browser, gw.url, viewport);
        await page.goto("/usage");
        await screenshot(page, `usage-entry-${viewport}`);
        await enterKey(page, k.key);
        await page.locator("#chart rect.chart-bar").first().waitFor();
        await screenshot(page, `usage-${viewport}`, { docs: true, fullPage: viewport === "phone" });
        expect(problems).toEqual([]);
        await context.close();
      }
    },
    FLOW_TIMEOUT_MS,
  );

  test(
    "a key with a weekly limit: the page shows the week beside the 5 hours, and whose the wait is once it is spent",
    async () => {
      const k = await gw.createKey({ name: "weekly-holder", limit: "5k", weeklyLimit: 300 });
      const hidden = await gw.createKey({ name: "no-week", limit: "5k" });
      await spend(gw, k.key, 300);
      await gw.statsWhen(k.key, { tokens: 300, requests: 1 });

      const { page, context, problems } = await newPage(browser, gw.url);
      await enterKey(page, k.key);
      await page.getByRole("heading", { name: "weekly-holder" }).waitFor();
      expect(await text(page, "#weekly")).toStartWith(
        "300 of 300 tokens used, 0 left; frees up from",
      );
      expect(await page.locator("#weekly-row").isVisible()).toBe(true);
      expect(await text(page, "#status-note")).toContain("weekly quota is spent");

      expect(problems).toEqual([]);
      await context.close();

      const other = await newPage(browser, gw.url);
      await enterKey(other.page, hidden.key);
      await other.page.getByRole("heading", { name: "no-week" }).waitFor();
      expect(await other.page.locator("#weekly-row").isVisible()).toBe(false);
      expect(other.problems).toEqual([]);
      await other.context.close();
    },
    FLOW_TIMEOUT_MS,
  );

  secretSweep(() => gw);
});
