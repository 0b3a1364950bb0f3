import type { PostgresJsDatabase } from "drizzle-orm/postgres-js";
import type postgres from "postgres";
import type * as schema from "./schema.ts";

/** The Drizzle database and the postgres.js client the PostgreSQL storage is built on. */
export type Db = PostgresJsDatabase<typeof schema>;
export type Sql = postgres.Sql;
