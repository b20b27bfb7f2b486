// The integration health page in a real headless Chromium: runs call the server itself through
// `http.request` (one 200, one 404), and the Health page shows the `http` integration with its
// success rate as text and SVG charts with points, for both windows, on a phone screen too, with
// no request leaving the server. Run by api/tests/dashboard.rs (the server allows private
// networks so it can call itself):
//   STEPWISE_URL=http://127.0.0.1:PORT STEPWISE_KEY=sw_... node health.mjs
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const base = process.env.STEPWISE_URL;
const key = process.env.STEPWISE_KEY;
assert.ok(base && key, "set STEPWISE_URL and STEPWISE_KEY");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const foreign = [];
page.on("request", (request) => {
  if (!request.url().startsWith(base)) foreign.push(request.url());
});
const pageErrors = [];
page.on("pageerror", (error) => pageErrors.push(error.message));
const consoleLines = [];
page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));

const step = async (name, body) => {
  try {
    await body();
    console.log(`ok - ${name}`);
  } catch (error) {
    console.log(`not ok - ${name}`);
    console.log(`page errors: ${JSON.stringify(pageErrors)}\nconsole: ${consoleLines.join("\n")}`);
    await page.screenshot({ path: "health-failure.png" }).catch(() => {});
    console.log(await page.content().catch(() => ""));
    throw error;
  }
};

const call = (method, path, body, type) =>
  page.evaluate(async ({ method, path, body, type }) => {
    const headers = { "Content-Type": type || "application/json", "X-Stepwise-CSRF": "1" };
    const response = await fetch(path, { method, headers, body, credentials: "same-origin" });
    return { status: response.status, body: await response.text() };
  }, { method, path, body, type });

const CALLER = `name: caller
inputs:
  path: { type: string }
steps:
  - id: call
    uses: http.request
    retry: { max_attempts: 1 }
    with: { method: GET, url: "${base}/\${{ inputs.path }}" }
`;

await step("log in", async () => {
  await page.goto(`${base}/ui/`);
  await page.fill("#api-key", key);
  await page.click("button[type=submit]");
  await page.waitForSelector("#nav >> text=Health");
});

await step("the Health page says when no integration was called", async () => {
  await page.click("nav >> text=Health");
  await page.waitForSelector("h1:has-text('Integration health')");
  await page.waitForSelector("text=No integration calls in the last hour.");
});

await step("a workflow calls the server once successfully and once for a missing page", async () => {
  const deployed = await call("POST", "/api/v1/workflows", CALLER, "application/yaml");
  assert.equal(deployed.status, 201, deployed.body);
  for (const path of ["healthz", "no-such-page"]) {
    const started = await call("POST", "/api/v1/workflows/caller/runs", JSON.stringify({ path }));
    assert.equal(started.status, 202, started.body);
    const runId = JSON.parse(started.body).run_id;
    const deadline = Date.now() + 30000;
    for (;;) {
      const run = JSON.parse((await call("GET", `/api/v1/runs/${runId}`)).body);
      if (!["queued", "running"].includes(run.status)) break;
      assert.ok(Date.now() < deadline, `run ${runId} did not finish`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
});

await step("the Health page shows the http integration with its rates and charts", async () => {
  // Still on the Health page from before: load it again.
  await page.reload();
  const card = "[data-integration=http]";
  await page.waitForSelector(card);
  assert.equal(await page.textContent(`${card} [data-stat=requests]`), "2");
  assert.equal(await page.textContent(`${card} [data-stat=success-rate]`), "50.0 %");
  assert.equal(await page.textContent(`${card} [data-stat=error-rate]`), "50.0 %");
  assert.equal(await page.textContent(`${card} [data-stat=errors]`), "1 client errors");
  assert.match(await page.textContent(`${card} [data-stat=p95]`), /^\d+ ms$|^\d+\.\d+ s$/);
  assert.equal(await page.getAttribute(`${card} [data-circuit]`, "data-circuit"), "closed");
  const requests = `${card} svg[data-chart=requests]`;
  assert.equal(await page.getAttribute(requests, "role"), "img");
  assert.match(await page.textContent(`${requests} > title`), /Requests by outcome, last hour/);
  assert.match(await page.textContent(`${requests} > desc`), /2 requests: 1 ok, 1 client errors/);
  assert.ok((await page.$$(`${requests} g[data-point] rect[data-outcome=ok]`)).length >= 1);
  assert.ok((await page.$$(`${requests} g[data-point] rect[data-outcome=client_error]`)).length >= 1);
  assert.ok((await page.$$(`${card} svg[data-chart=latency] circle[data-point]`)).length >= 1);
  assert.match(await page.textContent(`${card} .legend`), /ok: 1/);
});

await step("the 24-hour window shows the same calls in quarter hours", async () => {
  await page.click("[data-window='24h']");
  await page.waitForSelector("[data-window='24h'][aria-current]");
  await page.waitForSelector("text=one point per 15 min");
  const card = "[data-integration=http]";
  assert.equal(await page.textContent(`${card} [data-stat=success-rate]`), "50.0 %");
  assert.match(await page.textContent(`${card} svg[data-chart=requests] > title`), /last 24 hours/);
  assert.ok((await page.$$(`${card} svg[data-chart=requests] g[data-point]`)).length >= 1);
});

await step("the Health page fits a phone screen", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/ui/#/health`);
  await page.waitForSelector("[data-integration=http] svg[data-chart=latency]");
  const overflow = await page.evaluate(() => document.body.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `page is ${overflow}px wider than the screen`);
});

await step("every request stayed on the server and no script failed", async () => {
  assert.deepEqual(foreign, []);
  assert.deepEqual(pageErrors, []);
});

await browser.close();
