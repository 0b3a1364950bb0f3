/**
 * Chromium for the browser tests: Debian's `chromium` package driven by
 * playwright-core (no downloaded browser). Without /usr/bin/chromium the suites
 * are skipped with a loud line saying how to get it, so `npm test` still
 * passes on a machine with only Node and npm. CI (.ci/run) installs it and
 * sets REQUIRE_BROWSER=1: then a missing Chromium, or one that does not
 * start, fails the run instead of skipping.
 *
 *   const { browser, close } = await launchBrowser();
 *   const page = await newPage(browser, gw.url, "desktop");
 */

import { describe, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { REPO_ROOT } from "../harness/gateway.ts";

/** Debian's path; CHROMIUM_PATH points elsewhere (another distribution's build). */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const hasChromium = existsSync(CHROMIUM_PATH);

/** Set by CI: the browser tests must run; not being able to is a failure. */
export const browserRequired = process.env.REQUIRE_BROWSER === "1";

const HOW_TO_GET_IT =
  "Install Debian's chromium to run them (sudo apt-get install -y chromium), " +
  "or set CHROMIUM_PATH to a Chromium binary";

/**
 * `describe` when there is a Chromium. Without one: `describe.skip` with a
 * loud reason, or, under REQUIRE_BROWSER=1, a suite whose one test fails
 * saying why.
 */
export function describeInBrowser(name: string, body: () => void): void {
  if (hasChromium) {
    describe(name, body);
    return;
  }
  if (browserRequired) {
    const reason =
      `REQUIRE_BROWSER=1 but ${CHROMIUM_PATH} not found, so the browser tests ` +
      `"${name}" cannot run. ${HOW_TO_GET_IT}.`;
    console.error(`\n*** FAILING: ${reason} ***\n`);
    describe(name, () => {
      test("Chromium is present (REQUIRE_BROWSER=1)", () => {
        throw new Error(reason);
      });
    });
    return;
  }
  console.warn(
    `\n*** SKIPPING browser tests "${name}": ${CHROMIUM_PATH} not found. ${HOW_TO_GET_IT} ***\n`,
  );
  describe.skip(name, body);
}

/** For beforeAll hooks that start a browser and a gateway. */
export const BROWSER_HOOK_TIMEOUT_MS = 60_000;
/** A whole browser flow: many page steps, each bounded by Playwright's own timeouts. */
export const FLOW_TIMEOUT_MS = 90_000;

export const VIEWPORTS = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
} as const;

/**
 * Starts Chromium; when it does not start, the hook that called this fails
 * with a line naming the binary (whether or not REQUIRE_BROWSER is set: a
 * Chromium that is there but broken is never a reason to skip).
 */
export async function launchBrowser(): Promise<Browser> {
  try {
    return await startChromium();
  } catch (err) {
    const reason = `Chromium at ${CHROMIUM_PATH} did not start: ${(err as Error).message.split("\n")[0]}`;
    console.error(`\n*** FAILING browser tests: ${reason} ***\n`);
    throw new Error(reason, { cause: err });
  }
}

function startChromium(): Promise<Browser> {
  // launch() gives every run a fresh temporary profile (user data dir), removed on close.
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** What went wrong in a page that the test did not look for: script errors, CSP refusals. */
export interface PageProblems {
  problems: string[];
}

/**
 * A page in a fresh context (own cookies and storage) on `baseURL`, with the
 * clipboard allowed, a fixed locale and time zone, and its script errors and
 * CSP violations collected in `problems`.
 */
export async function newPage(
  browser: Browser,
  baseURL: string,
  viewport: keyof typeof VIEWPORTS = "desktop",
): Promise<{ page: Page; context: BrowserContext } & PageProblems> {
  const context = await browser.newContext({
    baseURL,
    viewport: VIEWPORTS[viewport],
    locale: "en-US",
    timezoneId: "UTC",
    permissions: ["clipboard-read", "clipboard-write"],
  });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (/Content Security Policy|Refused to/i.test(msg.text())) problems.push(msg.text());
  });
  return { page, context, problems };
}

const SCREENSHOT_DIR = join(REPO_ROOT, "test-output", "screenshots");
const DOCS_DIR = join(REPO_ROOT, "docs", "screenshots");

/**
 * Saves a screenshot under test-output/screenshots/ (git-ignored). With
 * UPDATE_SCREENSHOTS=1 it also replaces docs/screenshots/<name>.png, the
 * README's pictures; otherwise those stay as committed.
 */
export async function screenshot(
  page: Page,
  name: string,
  options: { fullPage?: boolean; docs?: boolean } = {},
): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const ignore = join(REPO_ROOT, "test-output", ".gitignore");
  if (!existsSync(ignore)) writeFileSync(ignore, "*\n");
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: options.fullPage ?? false });
  if (options.docs && process.env.UPDATE_SCREENSHOTS === "1") {
    mkdirSync(DOCS_DIR, { recursive: true });
    copyFileSync(path, join(DOCS_DIR, `${name}.png`));
  }
  return path;
}
