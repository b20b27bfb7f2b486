// Stepwise dashboard: the integration health page (#/health). Loaded before app.js, whose helpers
// (api, el, show, time, route) it uses when the router calls healthPage, its one global. Charts
// are plain SVG built here; every number a chart shows is also written out as text.
"use strict";

(() => {
  // Outcome classes in stacking order; their colours are the `o-*` classes of app.css (the
  // Content-Security-Policy allows no inline style).
  const HEALTH_OUTCOMES = [
    ["ok", "ok"],
    ["client_error", "client errors"],
    ["rate_limited", "rate limited"],
    ["server_error", "server errors"],
    ["timeout", "timeouts"],
    ["connection_error", "connection errors"],
    ["circuit_open", "refused by the open circuit"],
  ];
  const HEALTH_WINDOWS = { "1h": "last hour", "24h": "last 24 hours" };
  const SVG_NS = "http://www.w3.org/2000/svg";
  let healthChartIds = 0;

  function svgEl(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of children) node.append(child);
    return node;
  }

  function percent(rate) {
    return rate === null || rate === undefined ? "no requests" : `${(rate * 100).toFixed(1)} %`;
  }

  function millis(ms) {
    if (ms === null || ms === undefined) return "no measured requests";
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
  }

  function pointTime(ms, span) {
    const at = new Date(ms);
    const clock = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return span === "24h" ? `${at.toLocaleDateString([], { month: "short", day: "numeric" })} ${clock}` : clock;
  }

  function outcomeSummary(outcomes) {
    const parts = HEALTH_OUTCOMES.filter(([key]) => outcomes[key] > 0).map(([key, label]) => `${outcomes[key]} ${label}`);
    return parts.length ? parts.join(", ") : "none";
  }

  // An accessible chart frame: the SVG is an image named by its title and described by its desc.
  function chartFrame(kind, title, description, width, height) {
    const id = `health-chart-${++healthChartIds}`;
    return svgEl("svg", {
      viewBox: `0 0 ${width} ${height}`, class: "health-chart", role: "img", "data-chart": kind,
      "aria-labelledby": `${id}-title ${id}-desc`
    },
    svgEl("title", { id: `${id}-title` }, title),
    svgEl("desc", { id: `${id}-desc` }, description));
  }

  const CHART_W = 600, CHART_H = 120, CHART_PAD = 4;

  // Requests per point, stacked by outcome.
  function requestsChart(health, span) {
    const points = health.points;
    const busiest = Math.max(0, ...points.map((p) => p.requests));
    const scale = Math.max(1, busiest);
    const slot = (CHART_W - 2 * CHART_PAD) / points.length;
    const svg = chartFrame("requests", `Requests by outcome, ${HEALTH_WINDOWS[span]}`,
      `${health.totals.requests} requests: ${outcomeSummary(health.totals.outcomes)}. The busiest interval had ${busiest}.`,
      CHART_W, CHART_H);
    svg.append(svgEl("line", { class: "axis", x1: 0, x2: CHART_W, y1: CHART_H - CHART_PAD, y2: CHART_H - CHART_PAD }));
    points.forEach((point, index) => {
      if (point.requests === 0) return;
      const group = svgEl("g", { "data-point": point.at_ms },
        svgEl("title", {}, `${pointTime(point.at_ms, span)}: ${point.requests} requests (${outcomeSummary(point.outcomes)})`));
      let top = CHART_H - CHART_PAD;
      for (const [key] of HEALTH_OUTCOMES) {
        const count = point.outcomes[key];
        if (!count) continue;
        const height = (count / scale) * (CHART_H - 2 * CHART_PAD);
        top -= height;
        group.append(svgEl("rect", {
          x: (CHART_PAD + index * slot + slot * 0.1).toFixed(2), y: top.toFixed(2),
          width: Math.max(1, slot * 0.8).toFixed(2), height: Math.max(0.5, height).toFixed(2),
          class: `o-${key}`, "data-outcome": key,
        }));
      }
      svg.append(group);
    });
    return svg;
  }

  // p95 latency per point, a line through the points that had measured requests.
  function latencyChart(health, span) {
    const points = health.points;
    const measured = points.map((p, index) => ({ index, at: p.at_ms, ms: p.p95_latency_ms })).filter((p) => p.ms !== null);
    const slowest = Math.max(1, ...measured.map((p) => p.ms));
    const slot = (CHART_W - 2 * CHART_PAD) / points.length;
    const x = (index) => CHART_PAD + index * slot + slot / 2;
    const y = (ms) => CHART_H - CHART_PAD - (ms / slowest) * (CHART_H - 2 * CHART_PAD);
    const svg = chartFrame("latency", `p95 latency, ${HEALTH_WINDOWS[span]}`,
      measured.length
        ? `p95 latency over the window: ${millis(health.totals.p95_latency_ms)}; the slowest interval's p95 was ${millis(slowest)}.`
        : "No measured requests in this window.",
      CHART_W, CHART_H);
    svg.append(svgEl("line", { class: "axis", x1: 0, x2: CHART_W, y1: CHART_H - CHART_PAD, y2: CHART_H - CHART_PAD }));
    if (measured.length > 1) {
      svg.append(svgEl("polyline", {
        class: "latency-line", fill: "none",
        points: measured.map((p) => `${x(p.index).toFixed(2)},${y(p.ms).toFixed(2)}`).join(" "),
      }));
    }
    for (const p of measured) {
      svg.append(svgEl("circle", { cx: x(p.index).toFixed(2), cy: y(p.ms).toFixed(2), r: 3, class: "latency-point", "data-point": p.at },
        svgEl("title", {}, `${pointTime(p.at, span)}: p95 ${millis(p.ms)}`)));
    }
    return svg;
  }

  function stepLabel(span) {
    return span === "24h" ? "15 minutes" : "minute";
  }

  function healthCard(health, span) {
    const t = health.totals;
    const stat = (name, label, value) => [el("dt", {}, label), el("dd", { "data-stat": name }, value)];
    const legend = el("ul", { class: "legend" }, HEALTH_OUTCOMES.map(([key, label]) =>
      el("li", {}, el("span", { class: `swatch o-${key}`, "aria-hidden": "true" }), `${label}: ${t.outcomes[key]}`)));
    return el("section", { class: "panel health-card", "data-integration": health.integration, "aria-label": `${health.integration} health` },
      el("h2", {}, `${health.integration} `,
        el("span", { class: `badge c-${health.circuit}`, "data-circuit": health.circuit }, `circuit ${health.circuit.replace("_", "-")}`)),
      el("dl", { class: "meta health-stats" },
        stat("requests", "Requests", String(t.requests)),
        stat("success-rate", "Success rate", percent(t.success_rate)),
        stat("error-rate", "Error rate", percent(t.error_rate)),
        stat("errors", "Errors by class", outcomeSummary({ ...t.outcomes, ok: 0 })),
        stat("p95", "p95 latency", millis(t.p95_latency_ms)),
        stat("refreshes", "Token refreshes", `${t.token_refreshes_ok} succeeded, ${t.token_refreshes_failed} failed`),
        stat("rate-limit-waits", "Rate-limit waits", `${t.rate_limit_waits} (${millis(t.rate_limit_wait_ms)} in all)`),
        stat("circuit-changes", "Circuit", `opened ${t.circuit_opened} times, closed ${t.circuit_closed} times`)),
      el("h3", {}, "Requests by outcome"),
      requestsChart(health, span),
      el("p", { class: "muted chart-scale" }, `Top of the chart: ${Math.max(1, ...health.points.map((p) => p.requests))} requests per ${stepLabel(span)}.`),
      legend,
      el("h3", {}, "p95 latency"),
      latencyChart(health, span),
      el("p", { class: "muted chart-scale" }, `Top of the chart: ${millis(Math.max(1, ...health.points.map((p) => p.p95_latency_ms || 0)))}.`));
  }

  async function healthPage(params) {
    const span = params.get("window") === "24h" ? "24h" : "1h";
    const report = await api("GET", `/api/v1/integrations/health?window=${span}`);
    const switcher = el("div", { class: "filters", role: "group", "aria-label": "time window" },
      Object.entries(HEALTH_WINDOWS).map(([key, label]) => el("a", {
        href: `#/health?window=${key}`, class: "window-switch", "data-window": key,
        "aria-current": key === span ? "true" : null,
      }, label)));
    show(
      el("h1", {}, "Integration health"),
      switcher,
      el("p", { class: "muted" }, `${time(report.from_ms)} to ${time(report.to_ms)}, one point per ${report.step_ms / 60000} min. Circuits are this server's.`),
      report.integrations.length === 0
        ? el("p", { class: "muted" }, `No integration calls in the ${HEALTH_WINDOWS[span]}.`)
        : el("div", { id: "health" }, report.integrations.map((health) => healthCard(health, span))));
    // The counts are written every few seconds; keep the page current while it is open.
    refreshTimer = setTimeout(() => route(), 30000);
  }

  window.healthPage = healthPage;
})();
