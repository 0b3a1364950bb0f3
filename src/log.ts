import { writeSync } from "node:fs";
import pino from "pino";

export type Logger = pino.Logger;

/**
 * Log lines gathered during one turn of the event loop and written together:
 * one write for many requests instead of one each, and no line waits longer
 * than that turn. `flush` writes synchronously, for the moment before exit.
 */
class BatchedStdout {
  private lines: string[] = [];
  private scheduled = false;

  write(line: string): void {
    this.lines.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  flush(): void {
    this.scheduled = false;
    if (this.lines.length === 0) return;
    const out = this.lines.join("");
    this.lines = [];
    writeSync(1, out);
  }

  private drain(): void {
    this.scheduled = false;
    if (this.lines.length === 0) return;
    const out = this.lines.join("");
    this.lines = [];
    process.stdout.write(out);
  }
}

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
    destination ?? new BatchedStdout(),
  );
}

/** A logger that drops everything (tests, one-shot CLI commands). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
