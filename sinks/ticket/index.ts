export * from "./config.ts";
export * from "./render.ts";
export * from "./sink.ts";
