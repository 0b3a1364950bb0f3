/** Steps on the dashboard page shared by its browser tests. */

import type { Locator, Page } from "playwright-core";
import { ADMIN_KEY } from "./seed.ts";

export async function signIn(page: Page): Promise<void> {
  await page.goto("/dashboard");
  await page.getByLabel("Admin key").fill(ADMIN_KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Keys", exact: true }).waitFor();
}

/** The keys table's row for the key named `name`. */
export function row(page: Page, name: string): Locator {
  return page.locator("#keys-body tr").filter({ has: page.getByText(name, { exact: true }) });
}
