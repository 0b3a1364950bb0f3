import pino from "pino";

export type Logger = pino.Logger;

/**
 * Structured JSON lines on stdout. Nothing here ever receives a key in clear:
 * callers log display prefixes. The redaction below is a second line of
 * defence for headers that might be logged by mistake.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "tollgate" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: [
          "authorization",
          "*.authorization",
          "headers.authorization",
          "headers['x-api-key']",
          "*['x-api-key']",
        ],
        censor: "[redacted]",
      },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** A logger that drops everything (tests, one-shot CLI commands). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
