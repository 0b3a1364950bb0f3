import { Command } from "commander";
import { loadConfig } from "../config.ts";
import { createLogger } from "../log.ts";
import { startGateway } from "../server.ts";
import { isDriverSocketGlitch } from "../storage/postgres/driver-glitch.ts";
import { stopSignals } from "../util/stop-signals.ts";

export function serveCommand(): Command {
  return new Command("serve")
    .description("run the gateway (what `npm start` runs)")
    .action(async () => {
      const config = loadConfig();
      const log = createLogger(config.logLevel);
      const gateway = await startGateway(config, log);
      // A bug must be seen, not take every in-flight request down with it.
      process.on("unhandledRejection", (err) => {
        log.error({ err: err instanceof Error ? err.message : String(err) }, "unhandled rejection");
      });
      process.on("uncaughtException", (err) => {
        if (isDriverSocketGlitch(err)) {
          log.warn({ err: err.message }, "database driver error on a lost connection; carrying on");
          return;
        }
        log.error({ err: err.message, stack: err.stack }, "uncaught exception; exiting");
        log.flush();
        process.exit(1);
      });
      const stopSignal = stopSignals();
      const onSignal = (signal: string) => {
        const action = stopSignal(Date.now());
        // The same stop delivered twice (process group plus a forwarding
        // parent) is one stop.
        if (action === "repeat") return;
        if (action === "exit-now") {
          log.warn({ signal }, "signal again: exiting now, charging what is still running");
          void gateway.exitNow().finally(() => {
            log.flush();
            process.exit(130);
          });
          return;
        }
        log.info({ signal }, "shutting down");
        void gateway.stop().then(
          () => {
            log.flush();
            process.exit(0);
          },
          (err) => {
            log.error({ err }, "shutdown failed");
            log.flush();
            process.exit(1);
          },
        );
      };
      process.on("SIGTERM", () => onSignal("SIGTERM"));
      process.on("SIGINT", () => onSignal("SIGINT"));
    });
}
