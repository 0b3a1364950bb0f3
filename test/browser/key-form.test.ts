/**
 * The dashboard's key form in a real Chromium: a limit of 0 tokens (a key
 * that may not spend, as the admin API and the CLI allow) is accepted on
 * create and on edit, and the gateway then refuses the key's requests with
 * 429; a negative limit is refused by the form before it reaches the API.
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import OpenAI from "openai";
import type { Browser } from "playwright-core";
import { type GatewayProcess, HOOK_TIMEOUT_MS, startGateway } from "../harness/gateway.ts";
import { type MockUpstream, startMockUpstream } from "../harness/mock-upstream.ts";
import {
  BROWSER_HOOK_TIMEOUT_MS,
  describeInBrowser,
  FLOW_TIMEOUT_MS,
  launchBrowser,
  newPage,
} from "./browser.ts";
import { row, signIn } from "./dashboard-page.ts";
import { ADMIN_KEY, type ApiKey, admin, createKey } from "./seed.ts";

let mock: MockUpstream;
let gw: GatewayProcess;
let browser: Browser;

async function expectQuotaRefusal(secret: string): Promise<void> {
  const err = await gw
    .openai(secret, { maxRetries: 0 })
    .chat.completions.create({ model: "glm-4.7", messages: [{ role: "user", content: "Hi" }] })
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(err).toBeInstanceOf(OpenAI.RateLimitError);
}

describeInBrowser("dashboard key form in a browser", () => {
  beforeAll(async () => {
    mock = await startMockUpstream();
    gw = await startGateway({ mock, env: { ADMIN_API_KEY: ADMIN_KEY } });
    browser = await launchBrowser();
  }, BROWSER_HOOK_TIMEOUT_MS);

  afterAll(async () => {
    await browser?.close();
    await gw?.close();
    await mock?.stop();
  }, HOOK_TIMEOUT_MS);

  test(
    "a limit of 0 is accepted on create and on edit; a negative one is refused",
    async () => {
      const { page, context, problems } = await newPage(browser, gw.url);
      await signIn(page);
      const byName = async (name: string) => {
        const list = await admin<{ keys: ApiKey[] }>(gw, "GET", "/admin/keys?limit=500");
        return list.keys.find((k) => k.name === name);
      };

      // Create with 0.
      await page.getByRole("button", { name: "New key" }).click();
      await page.getByLabel("Name").fill("frozen");
      await page.getByLabel("Tokens per 5 hours").fill("0");
      await page.getByRole("button", { name: "Create key" }).click();
      await page.getByRole("dialog", { name: "Key created: frozen" }).waitFor();
      const secret = (await page.locator("#secret-value").textContent()) ?? "";
      gw.secrets.push(secret);
      await page.getByRole("button", { name: "Done" }).click();
      await row(page, "frozen").getByText("0 / 0").waitFor();
      expect((await byName("frozen"))?.token_limit_per_5h).toBe(0);
      await expectQuotaRefusal(secret);

      // Edit an existing key down to 0.
      const thawed = await createKey(gw, { name: "thawed", token_limit_per_5h: 1000 });
      await page.getByRole("button", { name: "Refresh" }).click();
      await row(page, "thawed").getByRole("button", { name: "Edit thawed" }).click();
      await page.getByLabel("Tokens per 5 hours").fill("0");
      await page.getByRole("button", { name: "Save" }).click();
      await row(page, "thawed").getByText("0 / 0").waitFor();
      expect((await byName("thawed"))?.token_limit_per_5h).toBe(0);
      await expectQuotaRefusal(thawed.key);

      // A negative limit never reaches the API.
      await row(page, "thawed").getByRole("button", { name: "Edit thawed" }).click();
      await page.getByLabel("Tokens per 5 hours").fill("-5");
      await page.getByRole("button", { name: "Save" }).click();
      await page.locator("#key-form-error", { hasText: "0 or more" }).waitFor();
      expect((await byName("thawed"))?.token_limit_per_5h).toBe(0);
      expect(problems).toEqual([]);
      await context.close();
    },
    FLOW_TIMEOUT_MS,
  );
});
