import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { TELEMETRY_STREAM } from "../lib/jetstream.ts";
import { connectWithRetry, NatsSettings } from "../lib/nats.ts";
import { startNats } from "../lib/testing/servers.ts";
import { LivePipeline } from "../pipelines/live.ts";
import { createSimulation, resolveScenario } from "../simulate/index.ts";
import { publishTelemetry } from "../simulate/publish.ts";
import type { BenchRow, BenchSuite } from "./types.ts";

const TARGET_RATIO = 0.5;
const HOSTS = 200;
const BATCH = 2000;

interface Pass {
  seconds: number;
  messages: number;
}

/**
 * The baseline: a pull consumer like resin's but without acknowledgements or state, fetching the
 * same batches, `JSON.parse` on every message and nothing else.
 */
async function plainSubscriber(nc: NatsConnection, total: number, run: number): Promise<Pass> {
  const t0 = performance.now();
  const jsm = await jetstreamManager(nc);
  const name = `bench-plain-${run}`;
  await jsm.consumers.add(TELEMETRY_STREAM, {
    durable_name: name,
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.All,
  });
  const consumer = await jetstream(nc).consumers.get(TELEMETRY_STREAM, name);
  let messages = 0;
  while (messages < total) {
    const batch = await consumer.fetch({ max_messages: Math.min(BATCH, total - messages), expires: 2000 });
    for await (const m of batch) if (JSON.parse(m.string()) !== null) messages++;
  }
  const seconds = (performance.now() - t0) / 1000;
  await jsm.consumers.delete(TELEMETRY_STREAM, name);
  return { seconds, messages };
}

/** `resin run`'s pipeline in this process (no time-series sink): durable consumer, detection, checkpoints, acks. */
async function liveResin(url: string, total: number, run: number): Promise<Pass> {
  const pipeline = new LivePipeline(
    { instance: `bench-${run}`, resetState: true, batchSize: BATCH },
    NatsSettings.parse({ servers: url }),
    {},
    pino({ level: "silent" }),
  );
  const t0 = performance.now();
  const running = pipeline.run();
  const processed = () =>
    (pipeline.graph?.stats.decode.decoded ?? 0) + (pipeline.graph?.stats.decode.invalid ?? 0);
  while (processed() < total) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const seconds = (performance.now() - t0) / 1000;
  pipeline.stop();
  await running;
  return { seconds, messages: pipeline.counters.consumed };
}

const faster = (a: Pass | undefined, b: Pass): Pass => (a === undefined || b.seconds < a.seconds ? b : a);

/**
 * Live ingest through a real nats-server (Debian's, on loopback): `resin run`'s pipeline against
 * a plain subscriber that only decodes the same messages. The stream holds a `mixed` fleet of
 * 200 hosts (~300k messages; ~100k with --quick); both passes run twice, alternating, best kept.
 */
export const liveBench: BenchSuite = {
  name: "live (NATS JetStream)",
  async run({ quick }) {
    const server = await startNats();
    const nc = await connectWithRetry(NatsSettings.parse({ servers: server.url }));
    try {
      const days = quick ? 0.5 : 1.5;
      const sim = createSimulation(resolveScenario("mixed", { hosts: HOSTS, days, seed: 1 }));
      const published = await publishTelemetry(nc, sim.lines(), {});
      const info = await (await jetstreamManager(nc)).streams.info(TELEMETRY_STREAM);
      const total = info.state.last_seq;
      if (info.state.messages !== total) throw new Error("stream not contiguous");

      let base: Pass | undefined;
      let resin: Pass | undefined;
      for (let i = 0; i < 2; i++) {
        base = faster(base, await plainSubscriber(nc, total, i));
        resin = faster(resin, await liveResin(server.url, total, i));
      }
      if (base === undefined || resin === undefined) throw new Error("no measurement");
      if (resin.messages !== total) throw new Error(`resin consumed ${resin.messages} of ${total}`);
      const baseRate = base.messages / base.seconds;
      const rate = resin.messages / resin.seconds;
      const ratio = rate / baseRate;
      const rows: BenchRow[] = [
        {
          name: "live: ingest relative to a plain subscriber + JSON.parse",
          value: ratio,
          unit: "×",
          baseline: { name: "plain subscriber msg/s", value: Math.round(baseRate) },
          ratio,
          target: `>= ${TARGET_RATIO}`,
          met: ratio >= TARGET_RATIO,
        },
        { name: "live: messages/s (resin run's pipeline)", value: Math.round(rate), unit: "msg/s" },
        { name: "plain subscriber: messages/s (baseline)", value: Math.round(baseRate), unit: "msg/s" },
        {
          name: `live: stream (mixed, ${HOSTS} hosts × ${days} d, ${(published.bytes / 1e6).toFixed(0)} MB)`,
          value: total,
          unit: "messages",
        },
        {
          name: "live: publish rate of the load generator",
          value: Math.round(published.published / (published.elapsedMs / 1000)),
          unit: "msg/s",
        },
      ];
      return rows;
    } finally {
      await nc.close();
      await server.dispose();
    }
  },
};
