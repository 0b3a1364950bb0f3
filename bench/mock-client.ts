/** The mock upstream's control routes, as the runner uses them between phases. */

export interface MockStats {
  /** Sum of the total tokens in every usage the mock actually wrote. */
  tokensReported: number;
  requests: number;
}

export async function mockStats(url: string): Promise<MockStats> {
  const res = await fetch(`${url}/__mock/stats`);
  return (await res.json()) as MockStats;
}

/** Zeroes the counts, so the next phase's figures are its own. */
export async function resetMock(url: string): Promise<void> {
  const res = await fetch(`${url}/__mock/reset`, { method: "POST" });
  await res.arrayBuffer();
}
