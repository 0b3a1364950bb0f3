// Whether an upstream base URL is a personal coding-plan endpoint. Such a
// plan is sold for one person's own use (their agents, machines, projects);
// sharing it between several people can cost the account. Providers put
// these plans under a `coding` path (Z.AI: /api/coding/paas/v4; Kimi:
// /coding/v1), apart from their pay-as-you-go API (Z.AI: /api/paas/v4).

/** Where the notice points: the section on what each kind of upstream account allows. */
export const UPSTREAM_TERMS_DOC = "docs/quotas.md#upstream-accounts";

/** The first of `urls` whose path has a `coding` segment, or undefined. */
export function codingPlanEndpoint(urls: readonly string[]): string | undefined {
  return urls.find((u) => {
    try {
      return new URL(u).pathname.split("/").some((segment) => segment.toLowerCase() === "coding");
    } catch {
      return false;
    }
  });
}

/** The one line `serve` logs when a coding-plan endpoint is shared by several active keys; undefined otherwise. */
export function sharedPlanNotice(urls: readonly string[], activeKeys: number): string | undefined {
  const endpoint = codingPlanEndpoint(urls);
  if (endpoint === undefined || activeKeys <= 1) return undefined;
  return `the upstream ${endpoint} is a personal coding-plan endpoint and ${activeKeys} keys are active: such a plan is for one person's own agents, machines and projects; for a team use a pay-as-you-go or team API account (see ${UPSTREAM_TERMS_DOC})`;
}
