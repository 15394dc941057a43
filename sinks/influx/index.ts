export * from "./config.ts";
export * from "./points.ts";
export * from "./series.ts";
export * from "./sink.ts";
