import { z } from "zod";

// The shape of MODELS_FILE (JSON or YAML). Objects are strict, so a
// misspelt field is an error rather than a silently ignored weight.

/** Multipliers and prices are kept to six decimals (see cost.ts). */
const MAX_FACTOR = 1000;
const factor = z
  .number({ error: "must be a number" })
  .min(0, { error: "must be 0 or more" })
  .max(MAX_FACTOR, { error: `must be at most ${MAX_FACTOR}` });
const positiveFactor = factor.refine((v) => v > 0, { error: "must be more than 0" });

const weights = z.strictObject({
  input: factor.default(1),
  output: factor.default(1),
  cache_read: factor.default(1),
  cache_write: factor.default(1),
});

/** Price per million tokens, in the file's currency. */
const price = z
  .number({ error: "must be a number" })
  .min(0, { error: "must be 0 or more" })
  .max(1_000_000, { error: "must be at most 1000000 per million tokens" });

const prices = z.strictObject({
  input: price.default(0),
  output: price.default(0),
  cache_read: price.default(0),
  cache_write: price.default(0),
});

const HOURS = /^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$/;

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const peak = z.strictObject({
  hours: z
    .string({ error: 'must be a string like "14:00-18:00"' })
    .regex(HOURS, { error: 'must look like "14:00-18:00" (24-hour clock, start-end)' })
    .refine((h) => h.split("-")[0] !== h.split("-")[1], {
      error: "start and end must differ",
    }),
  time_zone: z
    .string({ error: 'must be an IANA time zone such as "Asia/Shanghai"' })
    .refine(isTimeZone, { error: 'is not a known IANA time zone (e.g. "Asia/Shanghai", "UTC")' }),
  multiplier: positiveFactor,
});

const pattern = z.string().trim().min(1, { error: "must not be empty" });

const model = z.strictObject({
  match: z.union([pattern, z.array(pattern).min(1, { error: "must name at least one model" })], {
    error: "must be a model name or glob pattern, or a list of them",
  }),
  multiplier: positiveFactor.default(1),
  weights: weights.default({ input: 1, output: 1, cache_read: 1, cache_write: 1 }),
  peak: z.union([peak, z.array(peak)]).optional(),
  prices: prices.optional(),
});

export const modelsFileSchema = z.strictObject({
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/, { error: 'must be a three-letter currency code such as "USD"' })
    .default("USD"),
  models: z.array(model, { error: "must be a list of models" }),
});

export type ModelsFile = z.infer<typeof modelsFileSchema>;
export type ModelEntry = ModelsFile["models"][number];
export type PeakEntry = z.infer<typeof peak>;
