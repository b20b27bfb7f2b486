// Stepwise dashboard: a small hash-routed page over the JSON API. Every value from the server is
// inserted as text (never as HTML), and every state-changing request carries the anti-CSRF
// header the session cookie requires.
"use strict";

const main = document.getElementById("main");
const ACTIVE = new Set(["queued", "running"]);
let refreshTimer = null;

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body, contentType) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-Stepwise-CSRF"] = "1";
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = contentType || "application/json";
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (response.status === 204) return null;
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || "error", error.message || response.statusText);
  }
  return data;
}

// Builds an element: el("td", {class: "x"}, "text", child, ...). Strings become text nodes.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function badge(status) {
  return el("span", { class: `badge s-${status}`, "data-status": status }, status);
}

function time(ms) {
  return ms ? new Date(ms).toLocaleString() : "";
}

function duration(start, end) {
  if (!start) return "";
  const ms = (end || Date.now()) - start;
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60000);
  return `${minutes} min ${Math.round((ms % 60000) / 1000)} s`;
}

function json(value) {
  return el("pre", {}, JSON.stringify(value, null, 2));
}

function show(...nodes) {
  main.replaceChildren(...nodes.flat(Infinity).filter(Boolean));
}

function showError(error) {
  show(el("div", { class: "error-box", role: "alert" }, error.message));
}

function scheduleRefresh(active, render) {
  clearTimeout(refreshTimer);
  if (active) refreshTimer = setTimeout(render, 1500);
}

function parseHash() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query || "") };
}

// ---- login ----

function loginPage(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("tenant").textContent = "";
  const input = el("input", { id: "api-key", type: "password", autocomplete: "off", placeholder: "sw_...", required: true });
  const status = el("p", { class: "error", role: "alert" }, message || "");
  const form = el("form", { class: "panel login" },
    el("h1", {}, "Log in"),
    el("label", { for: "api-key" }, "API key"),
    input,
    el("button", { class: "primary", type: "submit" }, "Log in"),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/ui/login", { api_key: input.value.trim() });
      location.hash = "#/runs";
      await route();
    } catch (error) {
      status.textContent = error.status === 401 ? "That API key is not valid." : error.message;
    }
  });
  show(form);
  input.focus();
}

// ---- runs ----

async function runsPage(params) {
  const workflow = params.get("workflow") || "";
  const status = params.get("status") || "";
  const trigger = params.get("trigger") || "";
  const query = new URLSearchParams({ limit: "50" });
  if (workflow) query.set("workflow", workflow);
  if (status) query.set("status", status);
  if (trigger) query.set("trigger", trigger);
  const [page, workflows] = await Promise.all([
    api("GET", `/api/v1/runs?${query}`),
    api("GET", "/api/v1/workflows"),
  ]);
  const runs = page.items;
  const pick = (name, value, options, all) => {
    const select = el("select", { id: `filter-${name}`, "aria-label": name },
      el("option", { value: "" }, all),
      options.map((option) => el("option", { value: option, selected: option === value }, option)));
    select.addEventListener("change", () => {
      const next = new URLSearchParams(params);
      if (select.value) next.set(name, select.value); else next.delete(name);
      location.hash = `#/runs?${next}`;
    });
    return select;
  };
  const rows = runs.map((run) => el("tr", {
    class: "clickable", tabindex: "0", "data-run": run.id,
    onclick: () => { location.hash = `#/runs/${run.id}`; },
    onkeydown: (event) => { if (event.key === "Enter") location.hash = `#/runs/${run.id}`; },
  },
  el("td", {}, el("a", { href: `#/runs/${run.id}` }, run.id.slice(0, 8))),
  el("td", {}, run.workflow, el("span", { class: "muted" }, ` v${run.workflow_version}`)),
  el("td", {}, badge(run.status)),
  el("td", { class: "hide-narrow" }, run.trigger_kind),
  el("td", {}, time(run.started_at || run.created_at)),
  el("td", {}, duration(run.started_at, run.finished_at))));
  const search = el("input", { id: "run-search", placeholder: "Go to run id", "aria-label": "run id" });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && search.value.trim()) location.hash = `#/runs/${search.value.trim()}`;
  });
  show(
    el("h1", {}, "Runs"),
    el("div", { class: "filters" },
      pick("workflow", workflow, workflows.items.map((w) => w.name), "all workflows"),
      pick("status", status, ["queued", "running", "succeeded", "failed", "cancelled"], "all statuses"),
      pick("trigger", trigger, ["manual", "webhook", "cron", "workflow"], "all triggers"),
      search),
    runs.length === 0
      ? el("p", { class: "muted" }, "No runs yet.")
      : el("table", { id: "runs" },
        el("thead", {}, el("tr", {}, el("th", {}, "Run"), el("th", {}, "Workflow"), el("th", {}, "Status"),
          el("th", { class: "hide-narrow" }, "Trigger"), el("th", {}, "Started"), el("th", {}, "Duration"))),
        el("tbody", {}, rows)));
  scheduleRefresh(runs.some((run) => ACTIVE.has(run.status)), route);
}

// Lays the steps out by depth (longest path from a root) and draws their edges.
function dag(steps) {
  const byId = new Map(steps.map((step) => [step.id, step]));
  const depth = new Map();
  const depthOf = (step, seen = new Set()) => {
    if (depth.has(step.id)) return depth.get(step.id);
    if (seen.has(step.id)) return 0;
    seen.add(step.id);
    const parents = (step.needs || []).map((id) => byId.get(id)).filter(Boolean);
    const value = parents.length ? Math.max(...parents.map((p) => depthOf(p, seen))) + 1 : 0;
    depth.set(step.id, value);
    return value;
  };
  steps.forEach((step) => depthOf(step));
  const columns = [];
  for (const step of steps) (columns[depth.get(step.id)] ||= []).push(step);
  const W = 150, H = 30, GX = 50, GY = 14;
  const position = new Map();
  columns.forEach((column, x) => column.forEach((step, y) => position.set(step.id, { x: 10 + x * (W + GX), y: 10 + y * (H + GY) })));
  const width = 20 + columns.length * (W + GX);
  const height = 20 + Math.max(...columns.map((c) => c.length)) * (H + GY);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "step graph");
  const colours = { succeeded: "#2b8a3e", failed: "#c92a2a", running: "#3b5bdb", queued: "#3b5bdb", waiting: "#e67700" };
  for (const step of steps) {
    for (const need of step.needs || []) {
      const from = position.get(need), to = position.get(step.id);
      if (!from || !to) continue;
      const path = document.createElementNS(ns, "path");
      path.setAttribute("class", "edge");
      path.setAttribute("d", `M${from.x + W},${from.y + H / 2} C${from.x + W + GX / 2},${from.y + H / 2} ${to.x - GX / 2},${to.y + H / 2} ${to.x},${to.y + H / 2}`);
      svg.append(path);
    }
  }
  for (const step of steps) {
    const { x, y } = position.get(step.id);
    const group = document.createElementNS(ns, "g");
    group.setAttribute("data-step", step.id);
    const rect = document.createElementNS(ns, "rect");
    Object.entries({ x, y, width: W, height: H, rx: 5, fill: colours[step.status] || "#868e96" })
      .forEach(([k, v]) => rect.setAttribute(k, v));
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", x + 8);
    label.setAttribute("y", y + 19);
    label.textContent = `${step.id} · ${step.status}`;
    const title = document.createElementNS(ns, "title");
    title.textContent = `${step.id} (${step.uses}): ${step.status}`;
    group.append(rect, label, title);
    svg.append(group);
  }
  return el("div", { class: "dag" }, svg);
}

function stepDetails(step) {
  const parts = [];
  if (step.error) parts.push(el("div", { class: "error-box", "data-step-error": step.id }, step.error.message || JSON.stringify(step.error)));
  if (step.input !== null && step.input !== undefined) parts.push(el("h3", {}, "Input"), json(step.input));
  if (step.output !== null && step.output !== undefined) parts.push(el("h3", {}, "Output"), json(step.output));
  if (step.attempt_history.length) {
    parts.push(el("h3", {}, "Attempts"), el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "Status"), el("th", {}, "Started"), el("th", {}, "Took"), el("th", {}, "Error"))),
      el("tbody", {}, step.attempt_history.map((a) => el("tr", {},
        el("td", {}, a.attempt), el("td", {}, a.status), el("td", {}, time(a.started_at)),
        el("td", {}, duration(a.started_at, a.finished_at)), el("td", { class: "error" }, a.error || ""))))));
    const logs = step.attempt_history.flatMap((a) => a.logs || []);
    if (logs.length) parts.push(el("h3", {}, "Logs"), el("pre", {}, logs.map((l) => `${l.at} ${l.level} ${l.message}`).join("\n")));
  }
  if (step.items && step.items.length) {
    const counts = {};
    step.items.forEach((item) => { counts[item.status] = (counts[item.status] || 0) + 1; });
    parts.push(el("h3", {}, `Items (${step.items.length})`),
      el("p", {}, Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ")));
  }
  return parts;
}

async function runPage(id) {
  let run;
  try {
    run = await api("GET", `/api/v1/runs/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error.status === 404) return show(el("h1", {}, "Run not found"), el("p", {}, `No run ${id} in this tenant.`));
    throw error;
  }
  const open = new Set(JSON.parse(sessionStorage.getItem(`open:${id}`) || "[]"));
  const notice = el("div", { role: "status" });
  const act = (label, path, body, options = {}) => el("button", {
    type: "button", class: options.class, id: options.id,
    onclick: async (event) => {
      event.target.disabled = true;
      try {
        const result = await api("POST", path, body);
        if (result && result.run_id && result.run_id !== run.id) location.hash = `#/runs/${result.run_id}`;
        else await route();
      } catch (error) {
        notice.replaceChildren(el("div", { class: "error-box", role: "alert" }, error.message));
        event.target.disabled = false;
      }
    },
  }, label);
  const current = el("input", { type: "checkbox", id: "retry-current" });
  const actions = el("div", { class: "actions" });
  if (ACTIVE.has(run.status)) actions.append(act("Cancel", `/api/v1/runs/${run.id}/cancel`, undefined, { class: "danger", id: "cancel" }));
  if (run.status === "failed" || run.status === "cancelled") {
    const retry = el("button", {
      type: "button", class: "primary", id: "retry",
      onclick: async (event) => {
        event.target.disabled = true;
        try {
          await api("POST", `/api/v1/runs/${run.id}/retry`, { version: current.checked ? "current" : "original" });
          await route();
        } catch (error) {
          notice.replaceChildren(el("div", { class: "error-box", role: "alert" }, error.message));
          event.target.disabled = false;
        }
      },
    }, "Retry from failed step");
    actions.append(retry, el("label", {}, current, " on the current workflow version"));
  }
  actions.append(act("Re-run", `/api/v1/runs/${run.id}/rerun`, undefined, { id: "rerun" }));
  const rows = [];
  for (const step of run.steps) {
    const toggle = () => {
      if (open.has(step.id)) open.delete(step.id); else open.add(step.id);
      sessionStorage.setItem(`open:${id}`, JSON.stringify([...open]));
      runPage(id).catch(showError);
    };
    rows.push(el("tr", { class: "clickable", tabindex: "0", "data-step-row": step.id, onclick: toggle, onkeydown: (e) => { if (e.key === "Enter") toggle(); } },
      el("td", {}, step.id), el("td", { class: "hide-narrow" }, step.uses), el("td", {}, badge(step.status)),
      el("td", {}, step.attempts), el("td", {}, duration(step.started_at, step.finished_at)),
      el("td", { class: "error" }, step.error ? (step.error.message || "").slice(0, 120) : "")));
    if (open.has(step.id) || (step.error && run.status === "failed" && !sessionStorage.getItem(`open:${id}`))) {
      rows.push(el("tr", { class: "details" }, el("td", { colspan: "6" }, stepDetails(step))));
    }
  }
  show(
    el("p", {}, el("a", { href: "#/runs" }, "← Runs")),
    el("h1", {}, `${run.workflow} `, badge(run.status)),
    el("div", { class: "panel" }, el("dl", { class: "meta" },
      el("dt", {}, "Run"), el("dd", { id: "run-id" }, run.id),
      el("dt", {}, "Version"), el("dd", {}, `v${run.workflow_version}`),
      el("dt", {}, "Trigger"), el("dd", {}, run.trigger_kind),
      el("dt", {}, "Created"), el("dd", {}, time(run.created_at)),
      el("dt", {}, "Duration"), el("dd", {}, duration(run.started_at, run.finished_at)),
      run.retries ? [el("dt", {}, "Retries"), el("dd", {}, run.retries)] : [],
      run.parent_run_id ? [el("dt", {}, "Parent run"), el("dd", {}, el("a", { href: `#/runs/${run.parent_run_id}` }, run.parent_run_id))] : [],
      run.rerun_of ? [el("dt", {}, "Re-run of"), el("dd", {}, el("a", { href: `#/runs/${run.rerun_of}` }, run.rerun_of))] : [],
      run.concurrency_key ? [el("dt", {}, "Concurrency key"), el("dd", {}, run.concurrency_key)] : [])),
    run.error ? el("div", { class: "error-box", id: "run-error", role: "alert" }, run.error) : [],
    actions, notice,
    dag(run.steps),
    attemptTimeline(run.steps),
    el("table", { id: "steps" },
      el("thead", {}, el("tr", {}, el("th", {}, "Step"), el("th", { class: "hide-narrow" }, "Action"), el("th", {}, "Status"),
        el("th", {}, "Attempts"), el("th", {}, "Took"), el("th", {}, "Error"))),
      el("tbody", {}, rows)),
    el("h2", {}, "Input"), json(run.input),
    run.output ? [el("h2", {}, "Outputs"), el("div", { id: "run-output" }, json(run.output))] : []);
  scheduleRefresh(ACTIVE.has(run.status), () => runPage(id).catch(showError));
}

// ---- attempt timeline ----

// Each step's attempts on one time axis: a bar per attempt (status colour) and the wait before
// the next attempt. Positions are percentages of the run's span, so it fits any width.
function attemptTimeline(steps) {
  const now = Date.now();
  const lanes = steps.map((step) => ({
    step,
    attempts: step.attempt_history.length
      ? step.attempt_history.map((a) => ({ attempt: a.attempt, status: a.status, start: a.started_at, end: a.finished_at, error: a.error }))
      : step.started_at ? [{ attempt: 1, status: step.status, start: step.started_at, end: step.finished_at }] : [],
  })).filter((lane) => lane.attempts.length);
  if (!lanes.length) return null;
  const spans = lanes.flatMap((lane) => lane.attempts);
  const start = Math.min(...spans.map((a) => a.start));
  const end = Math.max(...spans.map((a) => a.end || now));
  const total = Math.max(end - start, 1);
  // A bar is at least 0.6% wide (a pure step takes 0 ms) and never overflows the track.
  const place = (node, from, to) => {
    const width = Math.max(((to - from) / total) * 100, 0.6);
    node.style.left = `${Math.min(((from - start) / total) * 100, 100 - width)}%`;
    node.style.width = `${width}%`;
    return node;
  };
  const rows = lanes.map(({ step, attempts }) => {
    const track = el("div", { class: "tl-track" });
    attempts.forEach((a, index) => {
      const previous = attempts[index - 1];
      if (previous && previous.end && a.start > previous.end) {
        const wait = `waited ${duration(previous.end, a.start)} before attempt ${a.attempt}`;
        track.append(place(el("div", { class: "tl-gap", "data-gap": a.attempt, title: wait, role: "img", "aria-label": wait }), previous.end, a.start));
      }
      const label = `attempt ${a.attempt}: ${a.status}, ${time(a.start)}, took ${duration(a.start, a.end)}${a.error ? `: ${a.error}` : ""}`;
      track.append(place(el("div", {
        class: `tl-bar s-${a.status}`, "data-attempt": a.attempt, "data-status": a.status,
        title: label, role: "img", "aria-label": label,
      }, `#${a.attempt}`), a.start, a.end || now));
    });
    return el("div", { class: "tl-row", "data-step": step.id }, el("div", { class: "tl-label" }, step.id), track);
  });
  return el("section", { class: "timeline panel", id: "timeline", "aria-label": "attempt timeline" },
    el("h2", {}, "Attempts over time"),
    rows,
    el("div", { class: "tl-axis muted" }, el("span", {}, time(start)), el("span", {}, `+${duration(start, end)}`)));
}

// ---- workflows ----

async function workflowsPage() {
  const page = await api("GET", "/api/v1/workflows");
  show(
    el("h1", {}, "Workflows"),
    page.items.length === 0
      ? el("p", { class: "muted" }, "No workflows deployed. Deploy one with `POST /api/v1/workflows` or `stepwise serve --workflows DIR`.")
      : el("table", { id: "workflows" },
        el("thead", {}, el("tr", {}, el("th", {}, "Workflow"), el("th", {}, "Version"), el("th", { class: "hide-narrow" }, "Description"), el("th", {}, "Updated"))),
        el("tbody", {}, page.items.map((w) => el("tr", {},
          el("td", {}, el("a", { href: `#/workflows/${encodeURIComponent(w.name)}` }, w.name), w.enabled ? [] : [" ", badge("disabled")]),
          el("td", {}, `v${w.latest_version}`),
          el("td", { class: "hide-narrow" }, w.description || ""),
          el("td", {}, time(w.updated_at)))))));
}

async function workflowPage(name, params) {
  const detail = await api("GET", `/api/v1/workflows/${encodeURIComponent(name)}`);
  const versions = [...detail.versions].sort((a, b) => b.version - a.version);
  const shown = Number(params.get("version")) || versions[0].version;
  const version = versions.find((v) => v.version === shown) || versions[0];
  const status = el("div", { role: "status" });
  const form = runForm(name, versions[0].inputs);
  const run = el("button", {
    type: "button", class: "primary", id: "run-workflow", "aria-expanded": "false", "aria-controls": "run-form",
    onclick: () => {
      form.hidden = !form.hidden;
      run.setAttribute("aria-expanded", String(!form.hidden));
      if (!form.hidden) form.querySelector("input, select, textarea, button").focus();
    },
  }, "Run");
  // A disabled workflow starts no run (manual, webhook or cron) until it is enabled again.
  const toggle = el("button", {
    type: "button", id: "toggle-enabled", class: detail.enabled ? "danger" : "primary",
    onclick: async (event) => {
      event.target.disabled = true;
      try {
        await api("POST", `/api/v1/workflows/${encodeURIComponent(name)}/${detail.enabled ? "disable" : "enable"}`);
        await route();
      } catch (error) {
        status.replaceChildren(el("div", { class: "error-box", role: "alert" }, error.message));
        event.target.disabled = false;
      }
    },
  }, detail.enabled ? "Disable" : "Enable");
  const diffView = el("div");
  if (versions.length > 1) {
    const from = el("select", { id: "diff-from", "aria-label": "from version" }, versions.map((v) => el("option", { value: v.version, selected: v.version === versions[1].version }, `v${v.version}`)));
    const to = el("select", { id: "diff-to", "aria-label": "to version" }, versions.map((v) => el("option", { value: v.version }, `v${v.version}`)));
    const render = async () => {
      const diff = await api("GET", `/api/v1/workflows/${encodeURIComponent(name)}/diff?from=${from.value}&to=${to.value}`);
      diffView.replaceChildren(el("pre", { id: "diff" }, diff.diff.split("\n").map((line) =>
        el("span", { class: line.startsWith("+") ? "diff-add" : line.startsWith("-") ? "diff-del" : "" }, `${line}\n`))));
    };
    from.addEventListener("change", render);
    to.addEventListener("change", render);
    diffView.append(el("h2", {}, "Diff"), el("div", { class: "filters" }, from, "→", to));
    await render();
  }
  show(
    el("p", {}, el("a", { href: "#/workflows" }, "← Workflows")),
    el("h1", {}, name, detail.enabled ? [] : [" ", badge("disabled")]),
    el("div", { class: "actions" }, toggle),
    el("div", { class: "panel" }, el("h2", {}, "Run it"),
      el("div", { class: "actions" }, run, el("a", { href: `#/runs?workflow=${encodeURIComponent(name)}` }, "Runs of this workflow")), form, status),
    el("h2", {}, "Versions"),
    el("div", { class: "filters" }, versions.map((v) => el("a", { href: `#/workflows/${encodeURIComponent(name)}?version=${v.version}`, "aria-current": v.version === version.version ? "page" : null }, `v${v.version}`))),
    el("pre", { id: "source" }, version.source),
    diffView);
}

// ---- run form ----

// The first type a schema names (`["string", "null"]` is a string).
function schemaType(schema) {
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  return schema.enum ? "enum" : type || "json";
}

// One declared input (its JSON Schema, workflows/src/inputs.rs): the control and how to read
// it back. `read` returns { value } or { omit: true } or { error: "message" }.
function inputField(name, schema) {
  const id = `input-${name}`;
  const type = schemaType(schema);
  const required = !("default" in schema);
  const has = schema.default !== undefined;
  let control;
  let read;
  if (type === "enum") {
    control = el("select", {},
      required ? el("option", { value: "" }, "Choose...") : [],
      schema.enum.map((option) => el("option", { value: JSON.stringify(option), selected: has && JSON.stringify(option) === JSON.stringify(schema.default) }, String(option))));
    read = () => control.value === "" ? { error: "Choose one." } : { value: JSON.parse(control.value) };
  } else if (type === "boolean") {
    control = el("input", { type: "checkbox", checked: has && schema.default === true });
    read = () => ({ value: control.checked });
  } else if (type === "integer" || type === "number") {
    control = el("input", { type: "number", step: type === "integer" ? "1" : "any", min: schema.minimum, max: schema.maximum, value: has ? schema.default : undefined, inputmode: type === "integer" ? "numeric" : "decimal" });
    read = () => {
      const text = control.value.trim();
      if (text === "") return required ? { error: "Required." } : { omit: true };
      const value = Number(text);
      if (!Number.isFinite(value)) return { error: "Enter a number." };
      if (type === "integer" && !Number.isInteger(value)) return { error: "Enter a whole number." };
      if (schema.minimum !== undefined && value < schema.minimum) return { error: `Must be at least ${schema.minimum}.` };
      if (schema.maximum !== undefined && value > schema.maximum) return { error: `Must be at most ${schema.maximum}.` };
      if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) return { error: `Must be more than ${schema.exclusiveMinimum}.` };
      if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum) return { error: `Must be less than ${schema.exclusiveMaximum}.` };
      return { value };
    };
  } else if (type === "string") {
    control = el("input", { type: "text", value: has ? schema.default : undefined, autocomplete: "off" });
    read = () => {
      const value = control.value;
      if (value === "") return required ? { error: "Required." } : { omit: true };
      if (schema.minLength !== undefined && value.length < schema.minLength) return { error: `At least ${schema.minLength} characters.` };
      if (schema.maxLength !== undefined && value.length > schema.maxLength) return { error: `At most ${schema.maxLength} characters.` };
      if (schema.pattern && !new RegExp(schema.pattern, "u").test(value)) return { error: `Must match ${schema.pattern}.` };
      return { value };
    };
  } else {
    // Objects, arrays and untyped inputs are typed as JSON.
    control = el("textarea", { rows: "3" }, has ? JSON.stringify(schema.default, null, 2) : "");
    read = () => {
      const text = control.value.trim();
      if (text === "") return required ? { error: "Required." } : { omit: true };
      let value;
      try {
        value = JSON.parse(text);
      } catch (error) {
        return { error: `Not valid JSON: ${error.message}` };
      }
      if (type === "object" && (value === null || typeof value !== "object" || Array.isArray(value))) return { error: "Enter a JSON object, e.g. {\"key\": \"value\"}." };
      if (type === "array" && !Array.isArray(value)) return { error: "Enter a JSON array, e.g. [1, 2]." };
      return { value };
    };
  }
  control.id = id;
  control.name = name;
  if (required) control.setAttribute("aria-required", "true");
  const problem = el("p", { class: "field-error error", id: `${id}-error`, hidden: true });
  const hint = [schema.description, type === "json" || type === "object" || type === "array" ? `JSON ${type === "json" ? "value" : type}` : null].filter(Boolean).join(" · ");
  control.setAttribute("aria-describedby", `${id}-hint ${id}-error`);
  const label = el("label", { for: id }, name, required ? el("span", { class: "muted" }, " (required)") : []);
  const node = el("div", { class: type === "boolean" ? "field check" : "field", "data-input": name },
    type === "boolean" ? [control, label] : [label, control],
    el("p", { class: "hint muted", id: `${id}-hint` }, hint),
    problem);
  const check = () => {
    const result = read();
    problem.hidden = !result.error;
    problem.textContent = result.error || "";
    control.setAttribute("aria-invalid", String(Boolean(result.error)));
    return result;
  };
  return { name, node, control, check };
}

// The form that starts a run: one typed field per declared input, or a JSON object when the
// workflow declares none. Checked here first; the server's refusal shows next to the button.
// The API lists inputs by name (the declaration order is not kept): required ones come first.
function runForm(workflow, inputs) {
  const declared = Object.entries(inputs || {});
  const ordered = [...declared.filter(([, s]) => !("default" in s)), ...declared.filter(([, s]) => "default" in s)];
  const fields = ordered.map(([name, schema]) => inputField(name, schema));
  const raw = inputs ? null : el("textarea", { id: "run-input", rows: "4" }, "{}");
  const status = el("div", { id: "run-form-status" });
  const form = el("form", { id: "run-form", class: "form", hidden: true, novalidate: true },
    fields.length ? fields.map((f) => f.node)
      : inputs ? el("p", { class: "muted" }, "This workflow takes no input.")
        : el("div", { class: "field" }, el("label", { for: "run-input" }, "Input (JSON object)"), raw),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", id: "run-submit" }, "Start run")),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    let body;
    if (raw) {
      body = raw.value.trim() || "{}";
    } else {
      const input = {};
      const invalid = [];
      for (const f of fields) {
        const result = f.check();
        if (result.error) invalid.push(f);
        else if (!result.omit) input[f.name] = result.value;
      }
      if (invalid.length) {
        status.replaceChildren(el("div", { class: "error-box", role: "alert" }, `Fix ${invalid.length === 1 ? "this input" : "these inputs"}: ${invalid.map((f) => f.name).join(", ")}.`));
        invalid[0].control.focus();
        return;
      }
      body = input;
    }
    const submit = form.querySelector("#run-submit");
    submit.disabled = true;
    try {
      const started = await api("POST", `/api/v1/workflows/${encodeURIComponent(workflow)}/runs`, body);
      location.hash = `#/runs/${started.run_id}`;
    } catch (error) {
      status.replaceChildren(el("div", { class: "error-box", role: "alert", id: "run-refused" }, error.message));
      submit.disabled = false;
    }
  });
  return form;
}

// ---- router ----

async function route() {
  clearTimeout(refreshTimer);
  const { parts, params } = parseHash();
  let session;
  try {
    session = await api("GET", "/ui/session");
  } catch (error) {
    if (error.status === 401) return loginPage();
    return showError(error);
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  document.getElementById("tenant").textContent = session.tenant.name;
  const section = parts[0] || "runs";
  document.querySelectorAll("[data-nav]").forEach((link) => link.classList.toggle("active", link.dataset.nav === section));
  try {
    if (section === "runs" && parts[1]) await runPage(parts[1]);
    else if (section === "workflows" && parts[1]) await workflowPage(decodeURIComponent(parts[1]), params);
    else if (section === "workflows") await workflowsPage();
    else if (section === "connections") await connectionsPage(params);
    else if (section === "sources" && parts[1]) await sourcePage(decodeURIComponent(parts[1]));
    else if (section === "sources") await sourcesPage();
    else if (section === "health") await healthPage(params);
    else await runsPage(params);
  } catch (error) {
    if (error.status === 401) return loginPage("Your session ended; log in again.");
    showError(error);
  }
}

document.getElementById("logout").addEventListener("click", async () => {
  await api("POST", "/ui/logout");
  location.hash = "";
  loginPage();
});
window.addEventListener("hashchange", () => route());
route();
