// The dashboard in a real headless Chromium (Debian's, driven by playwright-core): log in, run a
// workflow, watch it fail, read the failing step's error, fix the workflow, retry from the
// failed step on the new version and watch it succeed; filters, disabling a workflow, CSRF
// refusal; an OAuth connection authorized through a real OAuth server's redirects, tested and
// disconnected; a webhook source's URL, deliveries and rejections; the typed run form and the
// attempt timeline of a retried step; logout, a phone viewport, and no request from the page
// leaving the server. Run by api/tests/dashboard.rs:
//   STEPWISE_URL=http://127.0.0.1:PORT STEPWISE_KEY=sw_... OAUTH_URL=http://127.0.0.1:PORT node dashboard.mjs
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import http from "node:http";

const base = process.env.STEPWISE_URL;
const key = process.env.STEPWISE_KEY;
const oauthUrl = process.env.OAUTH_URL;
assert.ok(base && key && oauthUrl, "set STEPWISE_URL, STEPWISE_KEY and OAUTH_URL");

// The endpoint a retried step calls: busy (503) for the first three requests (one step attempt:
// the runtime's own three tries), then fine, so the step succeeds at its second attempt.
let flakyHits = 0;
const flaky = http.createServer((request, response) => {
  flakyHits += 1;
  response.writeHead(flakyHits <= 3 ? 503 : 200, { "content-type": "application/json" });
  response.end(JSON.stringify(flakyHits <= 3 ? { error: "busy" } : { ok: true }));
});
await new Promise((resolve) => flaky.listen(0, "127.0.0.1", resolve));
const flakyUrl = `http://127.0.0.1:${flaky.address().port}/`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const foreign = [];
page.on("request", (request) => {
  // The OAuth authorization is a navigation to the provider, which redirects straight back.
  if (!request.url().startsWith(base) && !request.url().startsWith(`${oauthUrl}/authorize`)) foreign.push(request.url());
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
  await page.click("#run-submit");
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
  await page.click("#run-submit");
  await page.waitForSelector("#run-refused >> text=is disabled");
  await page.click("#toggle-enabled >> text=Enable");
  await page.waitForSelector("#toggle-enabled >> text=Disable");
  assert.equal(await page.$("h1 [data-status=disabled]"), null);
});

await step("an OAuth app and an oauth2 connection are created from the connections page", async () => {
  await page.click("nav >> text=Connections");
  await page.waitForSelector("h1:has-text('Connections')");
  await page.waitForSelector("text=No connections yet.");
  // The integration pickers offer the API's provider catalogue.
  const catalog = JSON.parse((await call("GET", "/api/v1/providers")).body);
  const offered = await page.$$eval("#app-integrations option", (options) => options.map((o) => o.value));
  assert.deepEqual(offered, catalog.providers.map((p) => p.name));
  await page.fill("#new-app-name", "mock");
  await page.fill("#new-app-integration", "generic");
  await page.fill("#new-app-client-id", "stepwise-test");
  await page.fill("#new-app-client-secret", "mock-secret");
  await page.fill("#new-app-scopes", "openid profile");
  await page.fill("#new-app-issuer", oauthUrl);
  await page.click("#new-oauth-app button[type=submit]");
  await page.waitForSelector("#connections-status >> text=OAuth app mock is created.");
  await page.fill("#new-connection-name", "idp");
  await page.fill("#new-connection-integration", "generic");
  await page.selectOption("#new-connection-kind", "oauth2");
  await page.selectOption("#new-connection-app", "mock");
  await page.click("#new-connection button[type=submit]");
  await page.waitForSelector("#connections-status >> text=Connection idp is created; connect it via OAuth.");
  const row = await page.textContent("[data-connection=idp]");
  assert.match(row, /generic/);
  assert.equal(await page.getAttribute("[data-connection=idp] [data-status]", "data-status"), "needs_reauth");
  assert.match(row, /needs reauth/);
});

await step("Connect via OAuth goes through the OAuth server and back to a connected connection", async () => {
  await page.click("[data-connect=idp]");
  await page.waitForSelector("#oauth-outcome >> text=Connection idp is connected.");
  // Landed back on the dashboard; the outcome left the address once shown.
  const landed = new URL(page.url());
  assert.equal(landed.origin, base);
  assert.equal(landed.hash, "#/connections");
  assert.equal(await page.getAttribute("[data-connection=idp] [data-status]", "data-status"), "connected");
  // The granted scopes and the expiry, as the API stores them.
  const stored = JSON.parse((await call("GET", "/api/v1/connections/idp")).body);
  assert.ok(stored.scopes.length && stored.expires_at, JSON.stringify(stored));
  const row = await page.textContent("[data-connection=idp]");
  assert.ok(row.includes(stored.scopes.join(" ")), row);
  assert.ok(row.includes(new Date(stored.expires_at).toLocaleString()), row);
  assert.equal(await page.textContent("[data-connect=idp]"), "Reconnect");
  // The return marker was spent by the callback.
  assert.equal((await context.cookies()).some((c) => c.name === "stepwise_oauth_return"), false);
});

await step("a used authorization link brings the user back with an explanation", async () => {
  await page.goto(`${base}/ui/#/connections?oauth=failed&reason=unknown_state`);
  await page.waitForSelector("#oauth-outcome[role=alert] >> text=unknown or was already used");
});

await step("Test shows the probe's report", async () => {
  await page.click("[data-test=idp]");
  const report = await page.waitForSelector("[data-test-report=idp]");
  assert.match(await report.textContent(), /^Test of idp works .*Status now: connected\.$/);
});

await step("Disconnect asks first, then deletes the connection and revokes its tokens", async () => {
  await page.click("[data-disconnect=idp]");
  await page.waitForSelector("text=Disconnect idp?");
  // The confirmation takes the focus, so the keyboard can answer it.
  assert.equal(await page.evaluate(() => document.activeElement.dataset.confirmDisconnect), "idp");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#connections-status >> text=Connection idp is disconnected and its tokens were revoked at the provider.");
  assert.equal(await page.$("[data-connection=idp]"), null);
  const listed = JSON.parse((await call("GET", "/api/v1/connections")).body);
  assert.deepEqual(listed.items, []);
});

const SOURCE_SECRET = "whsec-dashboard-test";
const ON_PUSH = `name: on-push
on:
  webhook: { source: gh, events: [push] }
steps:
  - { id: note, uses: core.set, with: { ref: "\${{ trigger.body.ref }}" } }
`;
await step("the sources page shows the URL, an accepted delivery with its run, and a rejection", async () => {
  const created = await call("POST", "/api/v1/sources", JSON.stringify({ name: "gh", provider: "github", secret: SOURCE_SECRET }));
  assert.equal(created.status, 201, created.body);
  const source = JSON.parse(created.body);
  assert.equal((await call("POST", "/api/v1/workflows", ON_PUSH, { type: "application/yaml" })).status, 201);
  const payload = JSON.stringify({ ref: "refs/heads/main" });
  const deliver = (signature, id) => fetch(`${base}${source.url}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-github-event": "push", "x-github-delivery": id, "x-hub-signature-256": signature },
    body: payload,
  });
  const signed = `sha256=${createHmac("sha256", SOURCE_SECRET).update(payload).digest("hex")}`;
  const accepted = await deliver(signed, "dash-delivery-1");
  assert.equal(accepted.status, 200);
  const runId = (await accepted.json()).run_ids[0];
  assert.ok(runId);
  assert.equal((await deliver(signed, "dash-delivery-1")).status, 200);
  assert.equal((await deliver("sha256=00", "dash-delivery-2")).status, 401);

  await page.click("nav >> text=Webhook sources");
  await page.waitForSelector("#sources [data-source=gh]");
  // The provider picker offers the API's webhook schemes that need no settings.
  const schemes = JSON.parse((await call("GET", "/api/v1/providers")).body).webhook_schemes;
  assert.deepEqual(
    await page.$$eval("#new-source-provider option", (options) => options.map((o) => o.value)),
    schemes.filter((s) => !s.needs_settings).map((s) => s.name));
  assert.match(await page.textContent("#sources [data-source=gh]"), new RegExp(`github${base}/webhooks/github/${source.id} Copy`));
  await page.click("#sources >> text=gh");
  await page.waitForSelector("#source-url");
  assert.equal(await page.inputValue("#source-url"), `${base}/webhooks/github/${source.id}`);
  const delivery = await page.textContent("#deliveries [data-delivery=dash-delivery-1]");
  assert.match(delivery, /accepted/);
  assert.match(delivery, /1 duplicate,/);
  assert.equal(await page.getAttribute("#deliveries [data-delivery=dash-delivery-1] a.run-link", "href"), `#/runs/${runId}`);
  const rejection = await page.textContent("#rejections [data-rejection=signature_mismatch]");
  assert.match(rejection, /signature_mismatch/);
  await page.click("[data-copy=source-url]");
  await page.waitForSelector("text=/Copied\\.|Selected: press Ctrl\\+C to copy\\./");
  await page.click("#deliveries a.run-link");
  await page.waitForSelector("h1:has-text('on-push') [data-status=succeeded]", { timeout: 30000 });
});

await step("rotating the secret keeps the old one for the chosen time", async () => {
  await page.goto(`${base}/ui/#/sources/gh`);
  await page.fill("#rotate-secret-value", "whsec-next");
  await page.selectOption("#rotate-secret-overlap", "1h");
  await page.click("#rotate-secret button[type=submit]");
  await page.waitForSelector("#rotate-secret >> text=The secret is rotated; the old one verifies until");
});

const TYPED = `name: greet
description: Greets with typed inputs
inputs:
  who: { type: string, description: "Who to greet", minLength: 2 }
  times: { type: integer, minimum: 1, maximum: 5, default: 1 }
  loud: { type: boolean, default: false }
  tone: { type: string, enum: [warm, formal], default: warm }
  tags: { type: array, items: { type: string }, default: [] }
steps:
  - id: flaky
    uses: http.request
    retry: { max_attempts: 3, backoff: fixed, initial_delay: 1s }
    with: { url: "${flakyUrl}" }
  - id: greet
    needs: [flaky]
    uses: core.set
    with:
      text: "\${{ inputs.tone }} hello \${{ inputs.who }} x\${{ inputs.times }} loud=\${{ inputs.loud }} tags=\${{ inputs.tags | length }}"
outputs:
  text: \${{ steps.greet.output.text }}
`;
let typedRun;
await step("the run form is typed from the inputs, checks them, and shows the server's refusal", async () => {
  assert.equal((await call("POST", "/api/v1/workflows", TYPED, { type: "application/yaml" })).status, 201);
  await page.goto(`${base}/ui/#/workflows/greet`);
  await page.click("#run-workflow");
  assert.equal(await page.getAttribute("#run-workflow", "aria-expanded"), "true");
  assert.equal(await page.getAttribute("#input-times", "type"), "number");
  assert.equal(await page.getAttribute("#input-loud", "type"), "checkbox");
  assert.equal(await page.evaluate(() => document.getElementById("input-tone").tagName), "SELECT");
  assert.equal(await page.evaluate(() => document.getElementById("input-tags").tagName), "TEXTAREA");
  assert.equal(await page.textContent("label[for=input-who]"), "who (required)");
  assert.match(await page.textContent("#input-who-hint"), /Who to greet/);
  // Client-side checks, with messages next to the fields.
  await page.fill("#input-times", "9");
  await page.click("#run-submit");
  await page.waitForSelector("#input-who-error >> text=Required.");
  await page.waitForSelector("#input-times-error >> text=Must be at most 5.");
  assert.equal(await page.getAttribute("#input-who", "aria-invalid"), "true");
  assert.equal(await page.evaluate(() => document.activeElement.id), "input-who");
  await page.fill("#input-who", "Ada");
  await page.fill("#input-times", "2");
  await page.fill("#input-tags", "{\"not\": \"a list\"}");
  await page.click("#run-submit");
  await page.waitForSelector("#input-tags-error >> text=Enter a JSON array");
  assert.equal(await page.isHidden("#input-who-error"), true);
  // The server checks what the form does not (here: the items' type).
  await page.fill("#input-tags", "[1]");
  await page.click("#run-submit");
  await page.waitForSelector("#run-refused >> text=/tags/");
  assert.match(await page.textContent("#run-refused"), /invalid input/);
  await page.fill("#input-tags", "[\"a\", \"b\"]");
  await page.check("#input-loud");
  await page.selectOption("#input-tone", "formal");
  await page.click("#run-submit");
  await page.waitForSelector("#run-id");
  typedRun = (await page.textContent("#run-id")).trim();
  await page.waitForSelector("h1 [data-status=succeeded]", { timeout: 60000 });
  assert.match(await page.textContent("#run-output"), /formal hello Ada x2 loud=true tags=2/);
});

await step("the attempt timeline shows the retried step's attempts and the wait between them", async () => {
  await page.goto(`${base}/ui/#/runs/${typedRun}`);
  await page.waitForSelector("#timeline [data-step=flaky] .tl-bar");
  const bars = await page.$$eval("#timeline [data-step=flaky] .tl-bar", (nodes) => nodes.map((n) => [n.dataset.attempt, n.dataset.status]));
  assert.deepEqual(bars, [["1", "failed"], ["2", "succeeded"]]);
  assert.match(await page.getAttribute("#timeline [data-step=flaky] [data-gap='2']", "aria-label"), /^waited .+ before attempt 2$/);
  assert.equal(await page.$$eval("#timeline [data-step=greet] .tl-bar", (nodes) => nodes.length), 1);
  // Coloured by status: red for the failed attempt, green for the one that succeeded.
  const colours = await page.$$eval("#timeline [data-step=flaky] .tl-bar", (nodes) => nodes.map((n) => getComputedStyle(n).backgroundColor));
  assert.deepEqual(colours, ["rgb(201, 42, 42)", "rgb(43, 138, 62)"]);
  // Bars are placed in order along the axis.
  const lefts = await page.$$eval("#timeline [data-step=flaky] .tl-bar", (nodes) => nodes.map((n) => n.getBoundingClientRect().left));
  assert.ok(lefts[0] < lefts[1], JSON.stringify(lefts));
});

await step("the new pages fit a phone screen and keep a visible focus", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  const pages = [["#/connections", "#new-oauth-app"], ["#/sources/gh", "#rotate-secret"], ["#/workflows/greet", "#source"], [`#/runs/${typedRun}`, "#timeline"]];
  for (const [path, content] of pages) {
    await page.goto(`${base}/ui/${path}`);
    await page.waitForSelector(content);
    const overflow = await page.evaluate(() => document.body.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `${path} is ${overflow}px wider than the screen`);
  }
  await page.goto(`${base}/ui/#/connections`);
  await page.waitForSelector("#new-app-name");
  await page.focus("#new-app-name");
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.equal(outline, "solid");
  await page.setViewportSize({ width: 1280, height: 900 });
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
flaky.close();
