// The status page in a real browser: Debian's Chromium, driven by playwright-core, opens the
// page the real binary serves; connections go through the proxy; the test reads the table's rows,
// the counters, a filter's effect and the pause button from the page, then keeps the page busy
// with a burst of connections (snisplice_load) and checks it still answers promptly.
// Exit 0: passed; 1: failed; 77: skipped (with the reason).
// Env: SNISPLICE_BIN, SNISPLICE_LOAD, NODE_DIR (where install.sh put playwright-core),
// SNISPLICE_SCREENSHOT (optional: where to save a screenshot, e.g. docs/images/status-page.png).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import tls from "node:tls";

const require = createRequire(path.join(process.env.NODE_DIR, "package.json"));
const { chromium } = require("playwright-core");

const BIN = process.env.SNISPLICE_BIN;
const LOAD = process.env.SNISPLICE_LOAD;
const CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run"];

const cleanups = [];
function later(fn) { cleanups.push(fn); }
async function cleanUp() {
  for (const fn of cleanups.reverse()) {
    try { await fn(); } catch { /* best effort */ }
  }
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
  console.log(`ok: ${message}`);
}

async function waitFor(predicate, what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

// An echo backend (what snisplice_load's clients expect back).
function startBackend() {
  return new Promise((resolve) => {
    const server = net.createServer((socket) => {
      socket.pipe(socket);
      socket.on("error", () => {});
    });
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

// One TLS connection through the proxy (the backend is not TLS: the handshake fails, which is
// fine: the proxy routed, relayed and closed a real connection).
function connectThrough(port, name) {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername: name, rejectUnauthorized: false });
    socket.setTimeout(5000, () => socket.destroy());
    socket.on("error", () => resolve());
    socket.on("close", () => resolve());
  });
}

function startProxy(dir, port, metricsPort, backendPort) {
  const config = path.join(dir, "snisplice.yaml");
  writeFileSync(config, `workers: 2
splice: auto
log_level: info
access_log: "off"
listeners:
  - name: tls
    listen: ["127.0.0.1:${port}"]
    protocol: tls
    table: t
tables:
  t:
    - host: "*.web.test"
      backend: b
backends:
  b:
    servers: ["127.0.0.1:${backendPort}"]
metrics:
  listen: "127.0.0.1:${metricsPort}"
timeouts:
  idle: 30s
  shutdown_grace: 1s
`);
  const proxy = spawn(BIN, ["-c", config], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  proxy.stdout.on("data", (chunk) => { output += chunk; });
  proxy.stderr.on("data", (chunk) => { output += chunk; });
  proxy.output = () => output;
  later(() => new Promise((resolve) => {
    if (proxy.exitCode !== null) return resolve();
    proxy.on("exit", resolve);
    proxy.kill("SIGTERM");
  }));
  return proxy;
}

const rowsOf = (page) => page.$$eval("#rows tr", (rows) => rows.map((row) =>
  [...row.cells].map((cell) => cell.textContent)));
const HOST = 3, RESULT = 10;  // columns of the table

async function main() {
  if (!BIN || !LOAD || !process.env.NODE_DIR) throw new Error("SNISPLICE_BIN, SNISPLICE_LOAD and NODE_DIR are required");
  const dir = mkdtempSync(path.join(tmpdir(), "snisplice-web-"));
  later(() => rmSync(dir, { recursive: true, force: true }));
  const backend = await startBackend();
  later(() => backend.close());
  const [port, metricsPort] = [await freePort(), await freePort()];
  const proxy = startProxy(dir, port, metricsPort, backend.address().port);
  await waitFor(() => proxy.output().includes("ready:") || proxy.exitCode !== null, "snisplice to start");
  if (proxy.exitCode !== null) throw new Error(`snisplice exited:\n${proxy.output()}`);

  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_FLAGS });
  later(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  const requests = [];
  page.on("request", (request) => requests.push(request.url()));
  await page.goto(`http://127.0.0.1:${metricsPort}/`);
  await waitFor(async () => (await page.textContent("#status")) === "live", "the page's stream to be live");

  // Connections appear as rows, counters and names.
  for (let i = 0; i < 4; ++i) await connectThrough(port, `shop${i}.web.test`);
  for (let i = 0; i < 2; ++i) await connectThrough(port, "nowhere.example");
  let rows = await waitFor(async () => { const r = await rowsOf(page); return r.length >= 6 && r; },
    "six rows in the table");
  check(rows.filter((row) => row[HOST].endsWith(".web.test")).length === 4, "four routed connections shown");
  check(rows.filter((row) => row[HOST] === "nowhere.example" && row[RESULT] === "no_route").length === 2,
    "two refused connections shown with their result");
  await waitFor(async () => Number(await page.textContent("#connections")) >= 6, "the connection counter");
  check(Number(await page.textContent("#connections")) === 6,
    `the connection counter reads 6 (${await page.textContent("#connections")})`);
  check((await page.textContent("#names")).includes("nowhere.example"), "requested names listed");
  await waitFor(async () => /spliced|relayed/.test(await page.textContent("#datapath")), "the data path shown");
  check(/\(\d+ spliced, \d+ relayed\)/.test(await page.textContent("#datapath")), "the data path shown from /metrics");
  check(await page.$eval("#chart", (canvas) => canvas.width > 0), "the chart is drawn");

  // A filter: only refused connections from now on.
  await page.fill("#f-result", "no_route");
  await page.click("#apply");
  await waitFor(async () => (await page.textContent("#status")) === "live", "the stream to reconnect");
  await waitFor(async () => Number(await page.evaluate(() =>
    fetch("/metrics").then((r) => r.text()).then((t) => /snisplice_event_subscribers (\d+)/.exec(t)[1]))) === 1,
  "the old stream replaced");
  await connectThrough(port, "shop9.web.test");
  await connectThrough(port, "elsewhere.example");
  rows = await waitFor(async () => { const r = await rowsOf(page); return r.length >= 1 && r; }, "a filtered row");
  await new Promise((resolve) => setTimeout(resolve, 1500));  // anything unfiltered would have arrived by now
  rows = await rowsOf(page);
  check(rows.length === 1 && rows[0][HOST] === "elsewhere.example", "the filter lets only the refused connection through");

  // Pause: rows wait until resumed.
  await page.click("#pause");
  await connectThrough(port, "held.example");
  await waitFor(async () => (await page.textContent("#held")).startsWith("1 new"), "the held row counted");
  check((await rowsOf(page)).length === 1, "no row added while paused");
  await page.click("#pause");
  rows = await rowsOf(page);
  check(rows.length === 2 && rows[0][HOST] === "held.example", "the held row shown on resume");

  // Busy: a burst of connections; the page keeps answering and counting.
  await page.fill("#f-result", "");
  await page.click("#apply");
  await waitFor(async () => (await page.textContent("#status")) === "live", "the stream to reconnect");
  const load = spawn(LOAD, ["reconnect", "--target", `127.0.0.1:${port}`, "--sni", "burst.web.test",
    "--concurrency", "8", "--count", "6000", "--seconds", "8", "--size", "64"], { stdio: "ignore" });
  later(() => load.kill());
  let slowest = 0;
  while (load.exitCode === null) {
    const started = Date.now();
    await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => resolve())));
    slowest = Math.max(slowest, Date.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const rate = Number(await page.textContent("#rate"));
  console.log(`during the burst: slowest frame ${slowest} ms; the page showed ${rate} events/s at the end`);
  check(slowest < 1000, "the page answered within a second throughout the burst");
  await waitFor(async () => Number(await page.textContent("#connections")) > 1000, "the burst counted");
  check((await rowsOf(page)).length <= 300, "the table stays bounded");

  if (process.env.SNISPLICE_SCREENSHOT) {
    await page.screenshot({ path: process.env.SNISPLICE_SCREENSHOT, fullPage: true });
    console.log(`screenshot: ${process.env.SNISPLICE_SCREENSHOT}`);
  }
  const origin = `http://127.0.0.1:${metricsPort}/`;
  check(requests.every((url) => url.startsWith(origin) || url.startsWith(`ws://127.0.0.1:${metricsPort}/`)),
    "the page loads nothing from elsewhere");
  check(pageErrors.length === 0, `no script errors (${pageErrors.join("; ")})`);
}

try {
  await main();
  console.log("status page test passed");
  await cleanUp();
  process.exit(0);
} catch (error) {
  console.error(String(error.stack || error));
  await cleanUp();
  process.exit(1);
}
