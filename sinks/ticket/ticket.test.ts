import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { DiagnosisReport } from "../snapshot/report.ts";
import { renderTicket, svgPlot, ticketMarkdown } from "./render.ts";
import { TicketSink } from "./sink.ts";

const H = 3_600_000;
const T0 = Date.UTC(2026, 0, 5);
const MiB = 1024 * 1024;

function report(over: Partial<DiagnosisReport> = {}): DiagnosisReport {
  return DiagnosisReport.parse({
    v: 1,
    id: "api.h1.4242.0123456789",
    caseId: `api@${T0}`,
    suspectId: "api/h1/api/4242",
    component: "api",
    host: "h1",
    process: "api",
    pid: 4242,
    cluster: "c1",
    version: "1.2.0",
    os: "linux-6.1",
    pattern: "steady",
    severity: 7.4,
    growthBytesPerHour: 18 * MiB,
    interval: { start: T0 - 10 * H, end: T0 },
    detectedAt: T0,
    diagnosedAt: T0 + 3 * H,
    completion: "steady growth: R² 0.97 > 0.8 over the last 6 profiles",
    method: "series",
    windowMs: 3 * H,
    dropped: { tooLarge: 0, onReferences: 1 },
    culprits: [
      {
        rank: 1,
        frames: [
          { fn: "retainSessionBuffers", file: "/srv/app/session.js", line: 53 },
          { fn: "handle", file: "/srv/app/server.js", line: 10 },
        ],
        growthBytes: 30 * MiB,
        growthShare: 0.9,
        growingIntervals: 6,
        intervals: 6,
        score: 30 * MiB,
        reason: "grew 30.0 MiB, in 6 of 6 intervals",
        bytes: [0, 5, 10, 15, 20, 25, 30].map((m) => m * MiB),
      },
      {
        rank: 2,
        frames: [{ fn: "<script>alert(1)</script>", file: "/srv/a|b.js", line: 0 }],
        growthBytes: MiB,
        growthShare: 0.03,
        growingIntervals: 2,
        intervals: 6,
        score: 1,
        reason: "grew early then settled, like a cache filling",
        bytes: [0, 1, 1, 1, 1, 1, 1].map((m) => m * MiB),
      },
    ],
    profiles: [0, 1, 2, 3, 4, 5, 6].map((i) => ({
      id: `h1/s-h1-4242-1/${i}`,
      takenAt: T0 + i * 30 * 60_000,
      bytes: (40 + 5 * i) * MiB,
    })),
    references: [
      {
        host: "h7",
        match: "cluster",
        fingerprint: {
          component: "api",
          cluster: "c1",
          os: "linux-6.1",
          version: "1.2.0",
          date: "2026-01-05",
        },
        profiles: ["h7/r/1", "h7/r/2"],
      },
    ],
    series: {
      ts: [-12, -8, -4, 0, 2].map((h) => T0 + h * H),
      bytes: [1, 1.2, 1.6, 2, 2.2].map((g) => g * 1024 * MiB),
    },
    candidates: [
      { host: "h1", pid: 4242, severity: 7.4, clarity: 0.97, vms: 3, outcome: "diagnosed" },
      { host: "h2", pid: 7, severity: 5.1, outcome: "failed: no agent answers for host h2" },
    ],
    ...over,
  });
}

describe("ticket rendering", () => {
  it("names the leaking function, its file and line, and its growth first", () => {
    const t = renderTicket(report());
    expect(t.title).toBe(
      "Memory leak in api (api, pid 4242) on h1: retainSessionBuffers at /srv/app/session.js:53",
    );
    const md = t.markdown;
    const first = md.indexOf("1. `retainSessionBuffers`");
    expect(first).toBeGreaterThan(0);
    expect(md.indexOf("2. `<script>")).toBeGreaterThan(first);
    expect(md).toContain("/srv/app/session.js:53 — grew 30.0 MiB (90%), in 6 of 6 intervals");
    expect(md).toContain("| Growth pattern | steady, 18.0 MiB/h |");
    expect(md).toContain("| Suspicious interval | 2026-01-04T14:00:00Z – 2026-01-05T00:00:00Z (10.0 h) |");
    expect(md).toContain("failed: no agent answers for host h2");
    expect(md).toContain("/srv/a\\|b.js"); // a pipe would break the table or text
    expect(JSON.parse(t.json)).toEqual(report());
  });

  it("makes one self-contained HTML page with inline plots, escaping what it shows", () => {
    const html = renderTicket(report()).html;
    expect(html.startsWith("<!doctype html>")).toBe(true);
    expect(html).not.toMatch(/<script/i);
    expect(html).toContain("&#60;script&#62;alert(1)&#60;/script&#62;");
    expect(html).not.toMatch(/(src|href)=["']?https?:/); // nothing fetched
    expect(html.match(/<svg /g)).toHaveLength(2); // memory with the interval, and the profiles
    expect(html).toContain("<title>suspicious interval</title>");
    expect(html).toContain("retainSessionBuffers");
    expect(html).toContain("/srv/app/session.js:53");
    expect(html).toContain("grew <b>30.0 MiB</b>");
  });

  it("says so when there is no memory series or no culprit", () => {
    const bare = renderTicket(report({ series: undefined, culprits: [], references: [] }));
    expect(bare.title).toMatch(/no growing stack found$/);
    expect(bare.html).toContain("No memory series of the process was recorded");
    expect(bare.html).toContain("No stack grew between the profiles.");
    expect(ticketMarkdown(report({ references: [] }))).toContain("| References | none (no healthy host");
    expect(ticketMarkdown(report())).toContain("| References | h7 (same cluster, version 1.2.0) |");
  });

  it("plots the shaded interval only where it overlaps the series", () => {
    const line = { name: "m", xs: [10, 20, 30], ys: [1, 2, 3], color: "#000" };
    expect(svgPlot({ lines: [line], shade: [15, 25], caption: "c" })).toContain("<rect x=");
    expect(svgPlot({ lines: [line], shade: [0, 5], caption: "c" })).not.toContain("suspicious interval");
  });
});

describe("TicketSink without NATS", () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0)) await f();
  });
  const log = pino({ level: "silent" });

  function dir(): string {
    const d = mkdtempSync(join(tmpdir(), "resin-tickets-"));
    cleanup.push(() => rmSync(d, { recursive: true, force: true }));
    return d;
  }

  /** A webhook answering with the given statuses in turn (then 200), recording what it got. */
  async function webhook(statuses: number[]): Promise<{ url: string; got: { key: string; body: string }[] }> {
    const got: { key: string; body: string }[] = [];
    const server: Server = createServer((req, res) => {
      let body = "";
      req.on("data", (d) => {
        body += d;
      });
      req.on("end", () => {
        got.push({ key: String(req.headers["idempotency-key"]), body });
        const status = statuses.shift() ?? 200;
        if (status === 429) res.setHeader("retry-after", "0");
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got };
  }

  async function settled(sink: TicketSink): Promise<void> {
    for (
      let i = 0;
      i < 400 &&
      sink.stats.webhookPending + (sink as unknown as { inFlight: Set<unknown> }).inFlight.size > 0;
      i++
    )
      await new Promise((r) => setTimeout(r, 10));
  }

  it("writes JSON, Markdown and HTML files named by the report id", async () => {
    const d = dir();
    const sink = await TicketSink.open(undefined, { dir: join(d, "nested") }, { log });
    await sink.deliver(report());
    for (const ext of ["json", "md", "html"])
      expect(existsSync(join(d, "nested", `api.h1.4242.0123456789.${ext}`))).toBe(true);
    expect(JSON.parse(readFileSync(join(d, "nested", "api.h1.4242.0123456789.json"), "utf8")).pid).toBe(4242);
    expect(sink.stats).toMatchObject({ tickets: 1, filesWritten: 1, published: 0 });
    expect(await sink.close()).toEqual({ undelivered: 0 });
  });

  it("retries the webhook with backoff on 5xx and 429, counts failures, sends each report once", async () => {
    const hook = await webhook([503, 429]);
    const sink = await TicketSink.open(
      undefined,
      { webhookUrl: hook.url, webhookMinDelayMs: 1, webhookMaxDelayMs: 5 },
      { log },
    );
    await sink.deliver(report());
    await sink.deliver(report()); // offered again (a retry upstream): not POSTed again
    await settled(sink);
    expect(sink.stats).toMatchObject({ webhookDelivered: 1, webhookFailures: 2, webhookDropped: 0 });
    expect(hook.got).toHaveLength(3);
    expect(hook.got.every((g) => g.key === "api.h1.4242.0123456789")).toBe(true);
    const body = JSON.parse(hook.got[2]!.body);
    expect(body.title).toMatch(/retainSessionBuffers/);
    expect(body.report.id).toBe("api.h1.4242.0123456789");
    expect(await sink.close()).toEqual({ undelivered: 0 });
  });

  it("gives up on a 4xx at once and on a dead webhook after its attempts, without throwing", async () => {
    const hook = await webhook([400]);
    const refused = await TicketSink.open(undefined, { webhookUrl: hook.url }, { log });
    await refused.deliver(report());
    await settled(refused);
    expect(refused.stats).toMatchObject({ webhookDelivered: 0, webhookFailures: 1, webhookDropped: 1 });
    await refused.close();

    const dead = await TicketSink.open(
      undefined,
      {
        webhookUrl: "http://127.0.0.1:1/hook",
        webhookMaxAttempts: 3,
        webhookMinDelayMs: 1,
        webhookMaxDelayMs: 2,
      },
      { log },
    );
    await dead.deliver(report());
    await settled(dead);
    expect(dead.stats).toMatchObject({ webhookDelivered: 0, webhookFailures: 3, webhookDropped: 1 });
    await dead.close();
  });

  it("reports what the webhook did not get when closed while retrying", async () => {
    const hook = await webhook([503, 503, 503]);
    const sink = await TicketSink.open(
      undefined,
      { webhookUrl: hook.url, webhookMinDelayMs: 60_000, webhookMaxDelayMs: 60_000, closeTimeoutMs: 50 },
      { log },
    );
    await sink.deliver(report());
    for (let i = 0; i < 200 && sink.stats.webhookFailures === 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(await sink.close()).toEqual({ undelivered: 1 });
  });
});
