// Benchmark of the console's search page on a large store: "first results rendered in < 1 s
// with a million events in the store" (issue 19), measured in headless Chromium.
//
// 1. Loads EVENTS generated events (default 1,000,000: `crowsnest bench`'s corpus, the last 24
//    hours, through the HTTP API in 4 MiB batches, about a minute on a release build) into
//    BENCH_DATA_DIR, unless that directory already holds a store (then it is reused).
// 2. Starts `crowsnest server` on it, logs in, and opens the search page for each query RUNS
//    times (default 5): the time from navigation to the results table being in the page
//    (`#summary` visible; the results are rendered on the server, in the page itself), and the
//    browser's first contentful paint.
// 3. Prints a Markdown table (median and max per query) for BENCHMARKS.md.
//
// Environment: CROWSNEST_BIN (a release build), CHROMIUM, EVENTS, RUNS, BENCH_DATA_DIR
// (default: a temporary directory, removed afterwards).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const bin = process.env.CROWSNEST_BIN || path.join(root, "target/release/crowsnest");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const events = Number(process.env.EVENTS || 1_000_000);
const runs = Number(process.env.RUNS || 5);
const keep = Boolean(process.env.BENCH_DATA_DIR);
const dataDir = process.env.BENCH_DATA_DIR || mkdtempSync(path.join(tmpdir(), "crowsnest-console-bench-"));

const QUERIES = [
  "*",
  "kubernetes.namespace:payments",
  "event.dataset:kubernetes.audit AND NOT user.name:system\\:*",
  "\"connection refused\"",
  "http.response.status_code:>=400",
];

function startServer(port) {
  const configPath = path.join(dataDir, "console-bench.toml");
  writeFileSync(configPath, "");
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ["server", "--config", configPath, "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: "warn" },
    });
    let err = "";
    const timer = setTimeout(() => reject(new Error(`server did not start in 300 s:\n${err}`)), 300_000);
    child.stderr.on("data", (chunk) => {
      err += chunk;
      const found = err.match(/web console: (http:\/\/\S+)\//);
      if (found) {
        clearTimeout(timer);
        const token = readFileSync(path.join(dataDir, "admin.token"), "utf8").trim();
        resolve({ child, token, url: found[1] });
      }
    });
    child.on("exit", (code) => reject(new Error(`server exited with ${code}:\n${err}`)));
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

let server;
let browser;
let failed = false;
try {
  if (existsSync(path.join(dataDir, "admin.token"))) {
    console.log(`reusing the store in ${dataDir}`);
  } else {
    console.log(`loading ${events} events into ${dataDir} (crowsnest bench)...`);
    const t = Date.now();
    const load = spawnSync(bin, ["bench", "--events", String(events), "--data-dir", dataDir, "--search-runs", "1"], { stdio: ["ignore", "inherit", "inherit"] });
    if (load.status !== 0) throw new Error(`crowsnest bench failed (${load.status})`);
    console.log(`loaded in ${((Date.now() - t) / 1000).toFixed(0)} s (load, its own searches and settling)`);
  }
  server = await startServer(20000 + Math.floor(Math.random() * 20000));
  const { url, token } = server;
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${url}/login`);
  await page.fill("#token", token);
  await page.click("button[type=submit]");
  await page.waitForURL(/\/search/);
  // One warm-up (the store's caches after a start), not counted.
  await page.goto(`${url}/search?range=24h&q=*`);
  await page.waitForSelector("#summary");
  console.log("\n| query (range 24h) | matching events | first results rendered, median ms | max ms | first contentful paint, median ms |");
  console.log("|---|---|---|---|---|");
  for (const query of QUERIES) {
    const times = [];
    const paints = [];
    let summary = "";
    for (let i = 0; i < runs; i++) {
      const t0 = Date.now();
      await page.goto(`${url}/search?range=24h&q=${encodeURIComponent(query)}`);
      await page.waitForSelector("#summary", { state: "visible" });
      times.push(Date.now() - t0);
      paints.push(await page.evaluate(() => (performance.getEntriesByName("first-contentful-paint")[0] || { startTime: NaN }).startTime));
      summary = (await page.textContent("#summary")).trim();
    }
    const total = (summary.match(/of ([\d,]+) matching/) || [0, `0 ("${summary.slice(0, 40)}")`])[1];
    const label = query.replaceAll("|", "\\|");
    console.log(`| \`${label}\` | ${total} | ${median(times)} | ${Math.max(...times)} | ${Math.round(median(paints))} |`);
    if (median(times) >= 1000) failed = true;
  }
  const stats = JSON.parse(
    await (await fetch(`${url}/api/v1/search`, { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: JSON.stringify({ query: "*", limit: 1 }) })).text(),
  );
  console.log(`\nevents in the store: ${stats.total}`);
} catch (error) {
  console.error(error);
  failed = true;
} finally {
  if (browser) await browser.close();
  if (server) {
    server.child.kill("SIGINT");
    await new Promise((r) => {
      const t = setTimeout(() => { server.child.kill("SIGKILL"); r(); }, 30_000);
      server.child.on("exit", () => { clearTimeout(t); r(); });
    });
  }
  if (!keep) rmSync(dataDir, { recursive: true, force: true });
}
if (failed) {
  console.error("\nfirst results took 1 s or more (median) for a query, or the benchmark failed");
  process.exit(1);
}
