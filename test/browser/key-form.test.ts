/**
 * The dashboard's key form in a real Chromium: a limit of 0 tokens (a key
 * that may not spend, as the admin API and the CLI allow) is accepted on
 * create and on edit, and the gateway then refuses the key's requests with
 * 429; a negative limit is refused by the form before it reaches the API.
 * The key's own concurrency limit is set, shown and removed the same way.
 */

import { expect, setDefaultTimeout, test } from "bun:test";
import OpenAI from "openai";
import type { Browser } from "playwright-core";
import { E2E_TIMEOUT_MS, type GatewayProcess } from "../harness/gateway.ts";
import { describeInBrowser, FLOW_TIMEOUT_MS, newPage } from "./browser.ts";
import { row, signIn } from "./dashboard-page.ts";
import { type ApiKey, admin, chatError, createKey } from "./seed.ts";
import { secretSweep, useStage } from "./stage.ts";

// Explicit, for two busy cores: the runner's 5 s default measures the machine.
setDefaultTimeout(E2E_TIMEOUT_MS);

let gw: GatewayProcess;
let browser: Browser;

async function expectQuotaRefusal(secret: string): Promise<void> {
  expect(await chatError(gw, secret)).toBeInstanceOf(OpenAI.RateLimitError);
}

describeInBrowser("dashboard key form in a browser", () => {
  useStage((s) => ({ gw, browser } = s));

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

  test(
    "concurrent requests: set on create, shown in the detail view, refused when bad, emptied on edit",
    async () => {
      const { page, context, problems } = await newPage(browser, gw.url);
      await signIn(page);
      const concurrencyOf = async (name: string) => {
        const list = await admin<{ keys: Array<ApiKey & { max_concurrent: number | null }> }>(
          gw,
          "GET",
          "/admin/keys?limit=500",
        );
        return list.keys.find((k) => k.name === name)?.max_concurrent;
      };

      await page.getByRole("button", { name: "New key" }).click();
      await page.getByLabel("Name").fill("parallel");
      await page.getByLabel("Tokens per 5 hours").fill("1000");
      await page.getByLabel("Concurrent requests").fill("3");
      await page.getByRole("button", { name: "Create key" }).click();
      await page.getByRole("dialog", { name: "Key created: parallel" }).waitFor();
      gw.secrets.push((await page.locator("#secret-value").textContent()) ?? "");
      await page.getByRole("button", { name: "Done" }).click();
      expect(await concurrencyOf("parallel")).toBe(3);

      await row(page, "parallel").getByRole("button", { name: "Usage parallel" }).click();
      const detail = page.getByRole("dialog", { name: "parallel" });
      await detail.getByText("at most 3", { exact: true }).waitFor();
      await detail.getByRole("button", { name: "Close" }).click();

      await row(page, "parallel").getByRole("button", { name: "Edit parallel" }).click();
      const field = page.getByLabel("Concurrent requests");
      expect(await field.inputValue()).toBe("3");
      await field.fill("0");
      await page.getByRole("button", { name: "Save" }).click();
      await page.locator("#key-form-error", { hasText: "1 or more" }).waitFor();
      expect(await concurrencyOf("parallel")).toBe(3);

      await field.fill("");
      await page.getByRole("button", { name: "Save" }).click();
      await page.getByRole("dialog", { name: "Edit parallel" }).waitFor({ state: "hidden" });
      expect(await concurrencyOf("parallel")).toBeNull();
      expect(problems).toEqual([]);
      await context.close();
    },
    FLOW_TIMEOUT_MS,
  );

  test(
    "weekly limit and allowed models: set on create, shown in the table and the detail view, refused when bad, emptied on edit",
    async () => {
      const { page, context, problems } = await newPage(browser, gw.url);
      await signIn(page);
      const weeklyOf = async (name: string) => {
        const list = await admin<{
          keys: Array<ApiKey & { token_limit_per_week: number | null }>;
        }>(gw, "GET", "/admin/keys?limit=500");
        return list.keys.find((k) => k.name === name)?.token_limit_per_week;
      };

      await page.getByRole("button", { name: "New key" }).click();
      await page.getByLabel("Name").fill("weekly");
      await page.getByLabel("Tokens per 5 hours").fill("1000");
      await page.getByLabel("Tokens per 7 days").fill("2k");
      await page.getByLabel("Allowed models").fill("glm-4.6, glm-4.5*");
      await page.getByRole("button", { name: "Create key" }).click();
      await page.getByRole("dialog", { name: "Key created: weekly" }).waitFor();
      gw.secrets.push((await page.locator("#secret-value").textContent()) ?? "");
      await page.getByRole("button", { name: "Done" }).click();
      expect(await weeklyOf("weekly")).toBe(2000);
      await row(page, "weekly").getByText("week 0 / 2,000").waitFor();

      await row(page, "weekly").getByRole("button", { name: "Usage weekly" }).click();
      const detail = page.getByRole("dialog", { name: "weekly" });
      await detail.getByText("2,000 tokens", { exact: true }).waitFor();
      await detail.getByText("glm-4.6, glm-4.5*", { exact: true }).waitFor();
      await detail.getByRole("button", { name: "Close" }).click();

      await row(page, "weekly").getByRole("button", { name: "Edit weekly" }).click();
      const field = page.getByLabel("Tokens per 7 days");
      expect(await field.inputValue()).toBe("2000");
      await field.fill("-1");
      await page.getByRole("button", { name: "Save" }).click();
      await page.locator("#key-form-error", { hasText: "weekly limit" }).waitFor();
      expect(await weeklyOf("weekly")).toBe(2000);

      await field.fill("");
      expect(await page.getByLabel("Allowed models").inputValue()).toBe("glm-4.6, glm-4.5*");
      await page.getByLabel("Allowed models").fill("");
      await page.getByRole("button", { name: "Save" }).click();
      await page.getByRole("dialog", { name: "Edit weekly" }).waitFor({ state: "hidden" });
      expect(await weeklyOf("weekly")).toBeNull();
      const after = await admin<{ keys: Array<ApiKey & { allowed_models: string[] | null }> }>(
        gw,
        "GET",
        "/admin/keys?search=weekly",
      );
      expect(after.keys[0]?.allowed_models).toBeNull();
      expect(problems).toEqual([]);
      await context.close();
    },
    FLOW_TIMEOUT_MS,
  );

  secretSweep(() => gw);
});
