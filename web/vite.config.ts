/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The build goes into the Python package, which serves it at / (linewatch serve).
const api = process.env.LINEWATCH_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "../src/linewatch/dashboard",
    emptyOutDir: true,
    assetsDir: "assets",
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: {
      "/api": { target: api, ws: true },
      "/healthz": api,
    },
  },
  test: {
    environment: "jsdom",
    setupFiles: ["./src/test-setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
    css: false,
    // a test process per core (vitest's default leaves one core free: 57 s -> 41 s on 2 cores)
    maxWorkers: "100%",
  },
});
