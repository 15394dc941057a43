/**
 * The operations endpoint of a long-running command: `/metrics` in the Prometheus text format
 * (prom-client) and `/healthz` (200 when healthy, 503 with the reason otherwise).
 */
import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

export interface Health {
  ok: boolean;
  detail: Record<string, unknown>;
}

export async function startOpsServer(
  port: number,
  host: string,
  registry: Registry,
  health: () => Health,
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/metrics") {
      registry
        .metrics()
        .then((text) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(text);
        })
        .catch((err: Error) => {
          res.writeHead(500, { "content-type": "text/plain" });
          res.end(`metrics failed: ${err.message}\n`);
        });
      return;
    }
    if (path === "/healthz") {
      const h = health();
      res.writeHead(h.ok ? 200 : 503, { "content-type": "application/json" });
      res.end(`${JSON.stringify({ status: h.ok ? "ok" : "unhealthy", ...h.detail })}\n`);
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found: try /metrics or /healthz\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
