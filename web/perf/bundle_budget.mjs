// The first load's JavaScript, gzipped, against the budget (300 KB): the entry script and everything it
// imports statically (modulepreload), plus the live page's chunk and its imports (the page shown after sign-in).
// Reads the build in src/linewatch/dashboard; no browser needed. perf/dashboard_perf.mjs measures the same in a
// browser.
import { readFileSync } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";

const BUDGET_KB = 300;
const dist = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../src/linewatch/dashboard");
const index = readFileSync(path.join(dist, "index.html"), "utf8");
const files = new Set();
const visit = (rel) => {
  if (files.has(rel)) return;
  files.add(rel);
  const code = readFileSync(path.join(dist, rel), "utf8");
  // static imports: import{...}from"./x.js" / import"./x.js"
  for (const m of code.matchAll(/(?:^|[;\s}])import\s*(?:[\w${},*\s]+from\s*)?["'`](\.\/[^"'`]+\.js)["'`]/g)) {
    visit(path.posix.join(path.posix.dirname(rel), m[1]));
  }
  return code;
};
const entries = [...index.matchAll(/(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]);
for (const e of entries) visit(e);
const entryCode = readFileSync(path.join(dist, entries[0]), "utf8");
const live = entryCode.match(/import\(["'`](\.\/Live-[^"'`]+\.js)["'`]\)/)?.[1];
if (live) visit(path.posix.join("assets", live));
let gz = 0;
for (const f of files) gz += gzipSync(readFileSync(path.join(dist, f)), { level: 9 }).length;
const kb = gz / 1024;
console.log(`first load JavaScript: ${files.size} files, ${kb.toFixed(1)} KB gzipped (budget ${BUDGET_KB} KB)`);
if (kb > BUDGET_KB) {
  console.error("over the budget");
  process.exit(1);
}
