/**
 * The operator dashboard in a real Chromium against a real gateway process:
 * sign-in, the key lifecycle with the proxy as the judge, search and paging,
 * sign-out, and screenshots at desktop and phone widths.
 */

import { expect, setDefaultTimeout, test } from "bun:test";
import OpenAI from "openai";
import type { Browser, Page } from "playwright-core";
import { E2E_TIMEOUT_MS, type GatewayProcess, waitFor } from "../harness/gateway.ts";
import { describeInBrowser, FLOW_TIMEOUT_MS, newPage, screenshot } from "./browser.ts";
import { row, signIn } from "./dashboard-page.ts";
import { admin, chatError, createKey, seedHistory, spend } from "./seed.ts";
import { secretSweep, useStage } from "./stage.ts";

// Explicit, for two busy cores: the runner's 5 s default measures the machine.
setDefaultTimeout(E2E_TIMEOUT_MS);

let gw: GatewayProcess;
let browser: Browser;

/** The tokens drawn in the open chart, summed from its bars. */
async function chartTokens(page: Page, selector: string): Promise<number> {
  return page
    .locator(`${selector} rect.chart-bar`)
    .evaluateAll((bars) => bars.reduce((sum, b) => sum + Number(b.getAttribute("data-tokens")), 0));
}

async function expectRejected(secret: string): Promise<void> {
  expect(await chatError(gw, secret)).toBeInstanceOf(OpenAI.AuthenticationError);
}

describeInBrowser("dashboard in a browser", () => {
  useStage((s) => ({ gw, browser } = s));

  test("a wrong admin key is refused with a message", async () => {
    const { page, context, problems } = await newPage(browser, gw.url);
    await page.goto("/dashboard");
    await page.getByLabel("Admin key").fill("not-the-admin-key-at-all");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#signin-error", { hasText: "That admin key is not right." }).waitFor();
    expect(await page.locator("#signed-in").isHidden()).toBe(true);
    expect(await context.cookies()).toEqual([]);
    expect(problems).toEqual([]);
    await context.close();
  });

  test("a session that ends under the page brings back the sign-in form", async () => {
    const { page, context, problems } = await newPage(browser, gw.url);
    await signIn(page);
    await context.clearCookies();
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.locator("#signin-error", { hasText: "Your session has ended" }).waitFor();
    expect(await page.locator("#signed-in").isHidden()).toBe(true);
    expect(problems).toEqual([]);
    await context.close();
  });

  test(
    "create, copy, use, watch usage, edit, rotate, revoke; sign out ends the session",
    async () => {
      const { page, context, problems } = await newPage(browser, gw.url);
      await signIn(page);

      // The session is an HttpOnly cookie; nothing lands in web storage.
      const [cookie] = await context.cookies();
      expect(cookie).toMatchObject({
        name: "tollgate_session",
        httpOnly: true,
        sameSite: "Strict",
      });
      // (Page-side code is passed as strings: the project compiles without the DOM library.)
      expect(await page.evaluate("document.cookie")).toBe("");

      // Create: the secret is shown once, and Copy puts exactly it on the clipboard.
      await page.getByRole("button", { name: "New key" }).click();
      await page.getByLabel("Name").fill("alice");
      await page.getByLabel("Tokens per 5 hours").fill("2k");
      await page.getByRole("button", { name: "Create key" }).click();
      const secretDialog = page.getByRole("dialog", { name: "Key created: alice" });
      await secretDialog.waitFor();
      expect(await secretDialog.textContent()).toContain("you won't see it again");
      const secret = (await page.locator("#secret-value").textContent()) ?? "";
      expect(secret).toMatch(/^pk_[\w-]{32,}$/);
      gw.secrets.push(secret);
      await page.getByRole("button", { name: "Copy" }).click();
      await page.getByText("Copied to the clipboard.").waitFor();
      expect(await page.evaluate("navigator.clipboard.readText()")).toBe(secret);
      await page.getByRole("button", { name: "Done" }).click();
      // Closing removes the secret from the page.
      // (A selector, not a string predicate: polling one needs eval, which the
      // dashboard's Content-Security-Policy refuses, as it should.)
      await page.locator("#secret-value:empty").waitFor({ state: "attached" });
      await row(page, "alice").getByText("0 / 2,000").waitFor();
      // The Activity view shows the creation, made by this dashboard session.
      const created = page.locator("#activity-list li", { hasText: "key.create" });
      await created.filter({ hasText: "alice" }).waitFor();
      expect(await created.textContent()).toContain("by dashboard 127.0.0.1");
      expect(await created.textContent()).toContain("token_limit_per_5h: null → 2000");
      expect(await page.locator("#activity").textContent()).not.toContain(secret);

      // Use it through the proxy; the dashboard shows the tokens after a refresh.
      await spend(gw, secret, 123);
      await gw.statsWhen(secret, { tokens: 123, requests: 1 });
      // /stats counts charges not yet flushed; the admin listing reads the database.
      await waitFor("the admin API to see the usage", async () => {
        const page = await admin<{ keys: { total_lifetime_tokens: number }[] }>(
          gw,
          "GET",
          "/admin/keys",
        );
        return page.keys[0]?.total_lifetime_tokens === 123 ? true : undefined;
      });
      await page.getByRole("button", { name: "Refresh" }).click();
      const alice = row(page, "alice");
      await alice.getByText("123 / 2,000").waitFor();
      expect(await alice.getByRole("meter").getAttribute("aria-valuenow")).toBe("123");
      expect(await alice.locator("td.num").textContent()).toContain("123");
      // Totals across keys come from their own request.
      await page.locator("#total-tokens", { hasText: /^123$/ }).waitFor();
      await page.locator("#top-keys li", { hasText: "alice" }).waitFor();
      // The plan (UPSTREAM_PLAN_5H=4000): used against what it delivers, and
      // what the keys are allowed against it.
      const plan = page.locator("#plan-windows li", { hasText: "5 hours" });
      await plan.getByText("123 / 4,000").waitFor();
      expect(await plan.textContent()).toMatch(/keys allowed [\d.]+x the plan/);
      expect(await plan.getByRole("meter").getAttribute("aria-valuenow")).toBe("123");

      // Its chart, over each range.
      await alice.getByRole("button", { name: "Usage alice" }).click();
      const detail = page.getByRole("dialog", { name: "alice" });
      await detail.locator("rect.chart-bar").first().waitFor();
      expect(await chartTokens(page, "#detail-chart")).toBe(123);
      for (const range of ["last 5 hours", "last 30 days"]) {
        await detail.getByRole("button", { name: range }).click();
        await page.getByText(`123 tokens in 1 requests over the ${range}.`).waitFor();
        expect(await chartTokens(page, "#detail-chart")).toBe(123);
      }
      // The key's own history, in its detail view.
      await detail.locator("#detail-history li", { hasText: "key.create" }).waitFor();
      await detail.getByRole("button", { name: "Close" }).click();

      // Edit the limit: the gateway enforces the new one.
      await alice.getByRole("button", { name: "Edit alice" }).click();
      await page.getByLabel("Tokens per 5 hours").fill("5000");
      await page.getByRole("button", { name: "Save" }).click();
      await alice.getByText("123 / 5,000").waitFor();
      expect((await gw.stats(secret)).token_limit_per_5h).toBe(5000);

      // Rotate after a confirmation: the old secret is refused, the new one works.
      await alice.getByRole("button", { name: "Rotate alice" }).click();
      const confirm = page.getByRole("alertdialog", { name: "Rotate alice?" });
      await confirm.getByRole("button", { name: "Rotate key" }).click();
      await page.getByRole("dialog", { name: "New secret for alice" }).waitFor();
      const rotated = (await page.locator("#secret-value").textContent()) ?? "";
      gw.secrets.push(rotated);
      expect(rotated).toMatch(/^pk_/);
      expect(rotated).not.toBe(secret);
      await page.getByRole("button", { name: "Done" }).click();
      await expectRejected(secret);
      await spend(gw, rotated, 10);

      // Revoke: cancelling keeps the key; confirming revokes it and the proxy refuses it.
      await alice.getByRole("button", { name: "Revoke alice" }).click();
      await page.getByRole("alertdialog", { name: "Revoke alice?" }).waitFor();
      await page.getByRole("button", { name: "Cancel" }).click();
      expect(await alice.count()).toBe(1);
      await alice.getByRole("button", { name: "Revoke alice" }).click();
      await page.getByRole("button", { name: "Revoke key" }).click();
      await alice.waitFor({ state: "detached" });
      await page.getByText("No keys match.").waitFor();
      await expectRejected(rotated);
      // The revoked key is kept, with its usage, under its own status.
      await page.getByLabel("Status").selectOption("revoked");
      await alice.waitFor();
      expect(await alice.getByText("revoked", { exact: true }).count()).toBe(1);
      expect(await alice.getByRole("button", { name: "Revoke alice" }).count()).toBe(0);
      await page.getByLabel("Status").selectOption("all");
      await alice.waitFor({ state: "detached" });

      expect(await page.evaluate(() => localStorage.length + sessionStorage.length)).toBe(0);

      // Sign out: the sign-in form again, and the cookie no longer opens anything.
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByLabel("Admin key").waitFor();
      expect(await page.evaluate(() => fetch("/admin/keys").then((r) => r.status))).toBe(401);
      await page.reload();
      await page.getByLabel("Admin key").waitFor();
      expect(await page.locator("#signed-in").isHidden()).toBe(true);
      expect(problems).toEqual([]);
      await context.close();
    },
    FLOW_TIMEOUT_MS,
  );

  test(
    "search, status filter and pages; names are shown as text, never as markup",
    async () => {
      for (let i = 1; i <= 23; i++) {
        await createKey(gw, {
          name: `team-${String(i).padStart(2, "0")}`,
          token_limit_per_5h: 1000,
        });
      }
      await createKey(gw, {
        name: "gone",
        token_limit_per_5h: 1000,
        expires_at: new Date(Date.now() - 3_600_000).toISOString(),
      });
      await createKey(gw, { name: "<img src=x onerror=alert(1)>", token_limit_per_5h: 1000 });

      const { page, context, problems } = await newPage(browser, gw.url);
      await signIn(page);
      await page.getByText("1–20 of 25").waitFor();
      // Newest first: the odd name is on the first page, as text.
      expect(await row(page, "<img src=x onerror=alert(1)>").count()).toBe(1);
      expect(await page.locator("#keys-body img").count()).toBe(0);
      await page.getByRole("button", { name: "Next" }).click();
      await page.getByText("21–25 of 25").waitFor();
      expect(await page.locator("#keys-body tr").count()).toBe(5);
      expect(await page.getByRole("button", { name: "Next" }).isDisabled()).toBe(true);

      await page.getByLabel("Search").fill("team-1");
      await page.getByText("1–10 of 10").waitFor();
      expect(await page.locator("#keys-body tr").count()).toBe(10);

      await page.getByLabel("Search").fill("");
      await page.getByLabel("Status").selectOption("expired");
      await page.getByText("1–1 of 1").waitFor();
      const gone = row(page, "gone");
      expect(await gone.locator(".badge").textContent()).toBe("expired");
      expect(await gone.textContent()).toContain("expired 1 hour ago");
      expect(problems).toEqual([]);
      await context.close();
    },
    FLOW_TIMEOUT_MS,
  );

  test(
    "screenshots at desktop and phone widths",
    async () => {
      // Start from a tidy set of keys with some usage.
      const { keys } = await admin<{ keys: { id: string }[] }>(gw, "GET", "/admin/keys?limit=500");
      for (const k of keys) await admin(gw, "DELETE", `/admin/keys/${k.id}`);
      const day = 86_400_000;
      const seeded = [
        { name: "eval-runner", limit: 500_000, spend: [], hourly: 9_000, expires: -3 * day },
        { name: "dave", limit: 100_000, spend: [3_200], hourly: 1_500 },
        {
          name: "carol (intern)",
          limit: 50_000,
          spend: [6_000, 4_000],
          hourly: 4_000,
          expires: 2 * day,
        },
        {
          name: "build-bot",
          limit: 1_000_000,
          spend: [38_000, 41_000],
          hourly: 30_000,
          model: "glm-4.7",
        },
        {
          name: "alice",
          limit: 200_000,
          spend: [21_000, 14_500, 9_800],
          hourly: 12_000,
          expires: 60 * day,
        },
      ];
      for (const [i, s] of seeded.entries()) {
        const k = await createKey(gw, {
          name: s.name,
          token_limit_per_5h: s.limit,
          model: s.model,
          expires_at: s.expires ? new Date(Date.now() + s.expires).toISOString() : null,
        });
        // An expired key was used only while it was valid.
        const until = s.expires && s.expires < 0 ? Date.now() + s.expires : undefined;
        seedHistory(gw, k.id, s.hourly, i + 1, until);
        for (const tokens of s.spend) await spend(gw, k.key, tokens);
      }
      await createKey(gw, { name: "paused", token_limit_per_5h: 100_000 }).then((k) =>
        admin(gw, "PATCH", `/admin/keys/${k.id}`, { disabled: true }),
      );
      await Bun.sleep(300);

      for (const viewport of ["desktop", "phone"] as const) {
        const { page, context, problems } = await newPage(browser, gw.url, viewport);
        await page.goto("/dashboard");
        await screenshot(page, `dashboard-signin-${viewport}`);
        await signIn(page);
        await page.locator("#totals-chart rect.chart-bar").first().waitFor();
        await page.getByText("build-bot", { exact: true }).first().waitFor();
        await screenshot(page, `dashboard-${viewport}`, { docs: true });
        await screenshot(page, `dashboard-${viewport}-full`, { fullPage: true });
        await row(page, "build-bot").getByRole("button", { name: "Usage build-bot" }).click();
        await page.locator("#detail-chart rect.chart-bar").first().waitFor();
        await screenshot(page, `dashboard-key-${viewport}`, { docs: viewport === "desktop" });
        await page.getByRole("button", { name: "Close" }).click();
        await page.getByRole("button", { name: "New key" }).click();
        await screenshot(page, `dashboard-new-key-${viewport}`);
        expect(problems).toEqual([]);
        await context.close();
      }
    },
    FLOW_TIMEOUT_MS,
  );

  secretSweep(() => gw);
});
