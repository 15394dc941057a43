export * from "./audit.ts";
export * from "./config.ts";
export * from "./engine.ts";
export * from "./series.ts";
export * from "./sink.ts";
