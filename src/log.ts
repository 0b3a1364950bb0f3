import pino from "pino";

export type Logger = pino.Logger;

/**
 * Structured JSON lines on stdout. Nothing here ever receives a key in clear:
 * callers log display prefixes, and no code path logs request headers (a
 * test greps the logs of a whole run for every key it used). Path-based
 * redaction would cost more than the rest of a log line on every request.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "tollgate" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** A logger that drops everything (tests, one-shot CLI commands). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
