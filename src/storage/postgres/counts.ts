import type postgres from "postgres";
import type { DataCounts } from "../types.ts";
import { withOwnConnection } from "./own-connection.ts";

/** Counts and sums of the data tables, as one snapshot when run in a repeatable-read transaction. */
export async function dataCounts(q: postgres.Sql | postgres.TransactionSql): Promise<DataCounts> {
  const [k] = await q<{ n: string; t: string; r: string }[]>`
    select count(*) as n, coalesce(sum(total_tokens), 0) as t, coalesce(sum(total_requests), 0) as r
    from api_keys`;
  const [b] = await q<{ n: string; t: string }[]>`
    select count(*) as n, coalesce(sum(tokens), 0) as t from usage_buckets`;
  const [c] = await q<{ n: string }[]>`select count(*) as n from usage_checkpoints`;
  return {
    keys: Number(k?.n ?? 0),
    usageBuckets: Number(b?.n ?? 0),
    lifetimeTokens: Number(k?.t ?? 0),
    lifetimeRequests: Number(k?.r ?? 0),
    bucketTokens: Number(b?.t ?? 0),
    checkpoints: Number(c?.n ?? 0),
  };
}

/** The same counts, read on a connection of its own named `applicationName`. */
export function dataCountsAt(url: string, applicationName: string): Promise<DataCounts> {
  return withOwnConnection(url, applicationName, dataCounts);
}
