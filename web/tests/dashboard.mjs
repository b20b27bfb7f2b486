// The dashboard in a real headless Chromium (Debian's, driven by playwright-core): log in, run a
// workflow, watch it fail, read the failing step's error, fix the workflow, retry from the
// failed step on the new version and watch it succeed; filters, disabling a workflow, CSRF
// refusal, logout, a phone viewport, and no request leaving the server. Run by
// api/tests/dashboard.rs:
//   STEPWISE_URL=http://127.0.0.1:PORT STEPWISE_KEY=sw_... node dashboard.mjs
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
    await page.screenshot({ path: "dashboard-failure.png" }).catch(() => {});
    console.log(await page.content().catch(() => ""));
    throw error;
  }
};

// Calls the API from the page, with the session cookie (and the CSRF header unless told not to).
const call = (method, path, body, options = {}) =>
  page.evaluate(async ({ method, path, body, options }) => {
    const headers = { "Content-Type": options.type || "application/json" };
    if (!options.noCsrf) headers["X-Stepwise-CSRF"] = "1";
    const response = await fetch(path, { method, headers, body, credentials: "same-origin" });
    return { status: response.status, body: await response.text() };
  }, { method, path, body, options });

const FAILING = `name: checkout
description: Charge an order
steps:
  - { id: prepare, uses: core.set, with: { order: 42 } }
  - { id: charge, uses: core.fail, with: { message: "card declined for order \${{ steps.prepare.output.order }}" } }
  - { id: receipt, uses: core.set, with: { sent: true } }
outputs:
  sent: \${{ steps.receipt.output.sent }}
`;
const FIXED = FAILING.replace(
  '{ id: charge, uses: core.fail, with: { message: "card declined for order ${{ steps.prepare.output.order }}" } }',
  "{ id: charge, uses: core.set, with: { charged: true } }",
);
assert.notEqual(FIXED, FAILING);

await step("the root redirects to the login form", async () => {
  await page.goto(`${base}/`);
  await page.waitForSelector("#api-key");
  assert.equal(new URL(page.url()).pathname, "/ui/");
});

await step("a wrong key is refused", async () => {
  await page.fill("#api-key", "sw_not_a_key");
  await page.click("button[type=submit]");
  await page.waitForSelector("text=That API key is not valid.");
});

await step("the right key logs in to an empty runs page", async () => {
  await page.fill("#api-key", key);
  await page.click("button[type=submit]");
  await page.waitForSelector("h1:has-text('Runs')");
  await page.waitForSelector("text=No runs yet.");
  assert.equal(await page.textContent("#tenant"), "dashboard");
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "stepwise_session");
  assert.ok(session && session.httpOnly && session.sameSite === "Strict", JSON.stringify(cookies));
});

await step("session-cookie requests without the CSRF header are refused", async () => {
  const refused = await call("POST", "/api/v1/workflows", FAILING, { type: "application/yaml", noCsrf: true });
  assert.equal(refused.status, 403);
  assert.equal(JSON.parse(refused.body).error.code, "csrf_rejected");
});

await step("a workflow deployed with the session shows on the workflows page", async () => {
  const deployed = await call("POST", "/api/v1/workflows", FAILING, { type: "application/yaml" });
  assert.equal(deployed.status, 201, deployed.body);
  await page.click("nav >> text=Workflows");
  await page.waitForSelector("#workflows >> text=checkout");
  assert.match(await page.textContent("#workflows"), /Charge an order/);
});

let failedRun;
await step("running it from its page shows the run failing at the charge step", async () => {
  await page.click("#workflows >> text=checkout");
  await page.waitForSelector("#source");
  assert.match(await page.textContent("#source"), /core\.fail/);
  await page.click("#run-workflow");
  await page.waitForSelector("#run-id");
  failedRun = (await page.textContent("#run-id")).trim();
  await page.waitForSelector("h1 [data-status=failed]", { timeout: 30000 });
  assert.match(await page.textContent("#run-error"), /step `charge` failed: card declined for order 42/);
  // The failing step is opened by itself, with its error.
  assert.match(await page.textContent("[data-step-error=charge]"), /card declined for order 42/);
  assert.equal(await page.getAttribute("[data-step-row=prepare] [data-status]", "data-status"), "succeeded");
  assert.equal(await page.getAttribute("[data-step-row=receipt] [data-status]", "data-status"), "cancelled");
  await page.waitForSelector(".dag [data-step=charge]");
});

await step("after fixing the workflow, retry from the failed step succeeds on the new version", async () => {
  const fixed = await call("POST", "/api/v1/workflows", FIXED, { type: "application/yaml" });
  assert.equal(fixed.status, 201, fixed.body);
  await page.goto(`${base}/ui/#/workflows/checkout`);
  await page.waitForSelector("#diff");
  assert.match(await page.textContent("#diff"), /\+.*charged: true/);
  await page.goto(`${base}/ui/#/runs/${failedRun}`);
  await page.waitForSelector("#retry");
  await page.check("#retry-current");
  await page.click("#retry");
  await page.waitForSelector("h1 [data-status=succeeded]", { timeout: 30000 });
  assert.match(await page.textContent("#run-output"), /"sent": true/);
  assert.equal(await page.getAttribute("[data-step-row=charge] [data-status]", "data-status"), "succeeded");
});

await step("the runs list shows the run and filters by status", async () => {
  await page.goto(`${base}/ui/#/runs`);
  await page.waitForSelector(`[data-run='${failedRun}'] [data-status=succeeded]`);
  await page.selectOption("#filter-status", "failed");
  await page.waitForSelector("text=No runs yet.");
  await page.selectOption("#filter-status", "succeeded");
  await page.waitForSelector(`[data-run='${failedRun}']`);
});

await step("the dashboard fits a phone screen", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/ui/#/runs/${failedRun}`);
  await page.waitForSelector("#steps");
  const overflow = await page.evaluate(() => document.body.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `page is ${overflow}px wider than the screen`);
  await page.setViewportSize({ width: 1280, height: 900 });
});

await step("a workflow disabled on its page refuses runs until it is enabled again", async () => {
  await page.goto(`${base}/ui/#/workflows/checkout`);
  await page.click("#toggle-enabled >> text=Disable");
  await page.waitForSelector("h1 [data-status=disabled]");
  await page.click("#run-workflow");
  await page.waitForSelector("[role=alert] >> text=is disabled");
  await page.click("#toggle-enabled >> text=Enable");
  await page.waitForSelector("#toggle-enabled >> text=Disable");
  assert.equal(await page.$("h1 [data-status=disabled]"), null);
});

await step("logging out ends the session", async () => {
  await page.click("#logout");
  await page.waitForSelector("#api-key");
  const after = await call("GET", "/ui/session");
  assert.equal(after.status, 401);
});

await step("every request stayed on the server and no script failed", async () => {
  assert.deepEqual(foreign, []);
  assert.deepEqual(pageErrors, []);
});

await browser.close();
