/**
 * The ceiling: a pass-through proxy with no auth, quota or accounting. It forwards
 * method, path, headers and body to BARE_TARGET and streams the answer back, so
 * the gap between it and Tollgate is the cost of Tollgate's own work.
 * Prints {"url": ...} once it listens.
 */
const target = process.env.BARE_TARGET ?? "http://127.0.0.1:8080";

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT ?? 0),
  development: false,
  idleTimeout: 0,
  fetch(req) {
    const url = req.url;
    const path = url.slice(url.indexOf("/", url.indexOf("//") + 2));
    const headers = new Headers(req.headers);
    headers.delete("host");
    return fetch(target + path, {
      method: req.method,
      headers,
      body: req.body,
      redirect: "manual",
    });
  },
});

process.on("SIGTERM", () => server.stop(true).finally(() => process.exit(0)));
process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${server.port}` })}\n`);
