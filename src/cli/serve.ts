import { Command } from "commander";
import { loadConfig } from "../config.ts";
import { createLogger } from "../log.ts";
import { startGateway } from "../server.ts";
import { isDriverSocketGlitch } from "../storage/postgres/driver-glitch.ts";

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
      let signals = 0;
      const onSignal = (signal: string) => {
        signals++;
        if (signals > 1) {
          // A second signal: leave now. The journal is written event by event,
          // so whatever is not in the database is replayed on the next start.
          log.warn({ signal }, "second signal: exiting at once");
          log.flush();
          process.exit(130);
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
