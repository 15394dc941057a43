export * from "./config.ts";
export * from "./core.ts";
