/**
 * Settings of the ticket sink: where diagnosis reports go (a directory, a JetStream subject, a
 * webhook). One strict schema, every field documented where it is declared.
 */
import { z } from "zod";
import { checkOrThrow } from "../../schemas/common.ts";

const httpUrl = z.string().refine((text) => {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}, "must be an http:// or https:// URL");

export const TicketSinkConfig = z
  .object({
    /** Directory the reports are written to as <id>.json, <id>.md and <id>.html (created if missing); none: no files. */
    dir: z.string().min(1).optional(),
    /** JetStream subject the report (JSON) is published on, with the report id as message id. */
    subject: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/, "must be a NATS subject without wildcards")
      .default("resin.tickets"),
    /** Stream created for `subject` when no stream holds it. */
    stream: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/)
      .default("RESIN_TICKETS"),
    /** Tickets kept in the stream this long when resin creates it. */
    streamMaxAgeMs: z
      .number()
      .int()
      .min(60_000)
      .default(365 * 24 * 3_600_000),
    /** Publish on NATS at all (false: files and webhook only). */
    publish: z.boolean().default(true),
    /** URL every report is POSTed to as JSON; none: no webhook. */
    webhookUrl: httpUrl.optional(),
    /** Timeout of one webhook request. */
    webhookTimeoutMs: z.number().int().min(1).default(10_000),
    /** Attempts per report (network errors, 408, 429 and 5xx are retried; other 4xx are not). */
    webhookMaxAttempts: z.number().int().min(1).default(8),
    /** First retry delay; doubles per attempt, with jitter, up to `webhookMaxDelayMs` (a Retry-After may ask for more). */
    webhookMinDelayMs: z.number().int().min(0).default(1000),
    webhookMaxDelayMs: z.number().int().min(0).default(300_000),
    /** Reports waiting for the webhook at most; beyond that the oldest are dropped (counted). */
    webhookMaxPending: z.number().int().min(1).default(1000),
    /** Longest time `close()` waits for webhook deliveries in progress. */
    closeTimeoutMs: z.number().int().min(0).default(10_000),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.webhookMinDelayMs > c.webhookMaxDelayMs)
      ctx.addIssue({
        code: "custom",
        path: ["webhookMinDelayMs"],
        message: `must not exceed webhookMaxDelayMs (${c.webhookMaxDelayMs})`,
      });
  });
export type TicketSinkConfig = z.infer<typeof TicketSinkConfig>;
export type TicketSinkConfigInput = z.input<typeof TicketSinkConfig>;

export function parseTicketSinkConfig(raw: unknown): TicketSinkConfig {
  return checkOrThrow(TicketSinkConfig, raw, "ticket sink settings");
}
