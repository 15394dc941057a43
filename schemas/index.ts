export * from "./common.ts";
export * from "./suspect.ts";
export * from "./telemetry.ts";
export * from "./truth.ts";
