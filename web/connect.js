// Stepwise dashboard: the connections and webhook sources pages. Loaded before app.js, whose
// helpers (api, el, show, badge, time, route) these pages call when the router runs them.
"use strict";

// A labelled form field: the label is tied to the control, the hint to its description.
function field(id, label, control, hint) {
  control.id = id;
  if (hint) control.setAttribute("aria-describedby", `${id}-hint`);
  return el("div", { class: "field" },
    el("label", { for: id }, label),
    control,
    hint ? el("p", { class: "hint muted", id: `${id}-hint` }, hint) : []);
}

function errorBox(message) {
  return el("div", { class: "error-box", role: "alert" }, message);
}

function noticeBox(message) {
  return el("div", { class: "notice", role: "status" }, message);
}

// Runs `action` for a form's submit: its buttons are disabled meanwhile, and a refusal is shown
// in `status` without losing what was typed.
function onSubmit(form, status, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const buttons = form.querySelectorAll("button");
    buttons.forEach((button) => { button.disabled = true; });
    try {
      await action();
    } catch (error) {
      status.replaceChildren(errorBox(error.message));
    } finally {
      buttons.forEach((button) => { button.disabled = false; });
    }
  });
}

// ---- connections ----

// What the OAuth callback's `reason` codes mean (api/src/routes/oauth.rs).
const OAUTH_FAILURES = {
  unknown_state: "This authorization link is unknown or was already used. Start the connection again.",
  expired: "The authorization took longer than 10 minutes. Start the connection again.",
  other_tenant: "This authorization belongs to another tenant.",
  provider_error: "The provider refused the authorization",
  exchange_failed: "The provider did not exchange the authorization code for tokens; see the server log.",
  malformed: "The provider's redirect was not a valid OAuth 2.0 response.",
  invalid_key: "The API key sent with the callback is not valid.",
  internal: "An internal error occurred; see the server log.",
};

function oauthOutcome(params) {
  const outcome = params.get("oauth");
  if (outcome === "connected") {
    return el("div", { class: "notice", role: "status", id: "oauth-outcome" },
      `Connection ${params.get("connection") || ""} is connected.`);
  }
  if (outcome === "failed") {
    const reason = params.get("reason") || "internal";
    const provider = params.get("error");
    const text = OAUTH_FAILURES[reason] || `Authorization failed (${reason}).`;
    return el("div", { class: "error-box", role: "alert", id: "oauth-outcome" },
      `Authorization failed: ${text}${provider ? ` (${provider})` : ""}`);
  }
  return null;
}

function connectionStatus(connection) {
  const labels = { connected: "connected", needs_reauth: "needs reauth", error: "error" };
  return el("span", { class: `badge s-${connection.status}`, "data-status": connection.status },
    labels[connection.status] || connection.status);
}

function testReport(name, report) {
  const verdict = report.ok ? "works" : "failed";
  const facts = [report.status ? `HTTP ${report.status}` : "no response", `${report.latency_ms} ms`].join(", ");
  return el("div", { class: report.ok ? "notice" : "error-box", role: report.ok ? "status" : "alert", "data-test-report": name },
    `Test of ${name} ${verdict} (${facts}): ${report.message}. Status now: ${report.connection_status.replace("_", " ")}.`);
}

// An integration input offering the providers of the catalogue (`GET /api/v1/providers`,
// from the providers' declarations): this file names none.
function integrationInput(listId, providers) {
  const input = el("input", { required: true, list: listId, autocomplete: "off",
    placeholder: providers.map((p) => p.name).join(", ") });
  const list = el("datalist", { id: listId },
    providers.map((p) => el("option", { value: p.name }, p.display_name)));
  return [input, list];
}

async function connectionsPage(params) {
  const [connections, apps, catalog] = await Promise.all([
    api("GET", "/api/v1/connections"),
    api("GET", "/api/v1/oauth-apps"),
    api("GET", "/api/v1/providers"),
  ]);
  const status = el("div", { id: "connections-status" });
  const rows = connections.items.map((connection) => {
    const name = connection.name;
    const actions = el("div", { class: "row-actions" });
    if (connection.kind === "oauth2") {
      const query = new URLSearchParams({ connection: name, return_to: "dashboard" });
      actions.append(el("a", {
        class: "button primary", "data-connect": name,
        href: `/oauth/${encodeURIComponent(connection.integration)}/authorize?${query}`,
      }, connection.status === "connected" ? "Reconnect" : "Connect via OAuth"));
    }
    actions.append(el("button", {
      type: "button", "data-test": name,
      onclick: async (event) => {
        event.target.disabled = true;
        status.replaceChildren(noticeBox(`Testing ${name}...`));
        try {
          const report = await api("POST", `/api/v1/connections/${encodeURIComponent(name)}/test`);
          status.replaceChildren(testReport(name, report));
        } catch (error) {
          status.replaceChildren(errorBox(error.message));
        } finally {
          event.target.disabled = false;
        }
      },
    }, "Test"));
    // Deleting revokes the tokens at the provider: ask inline first (no blocking dialog).
    actions.append(el("button", {
      type: "button", class: "danger", "data-disconnect": name,
      onclick: () => {
        const confirmButton = el("button", {
          type: "button", class: "danger", "data-confirm-disconnect": name,
          onclick: async (event) => {
            event.target.disabled = true;
            try {
              const deleted = await api("DELETE", `/api/v1/connections/${encodeURIComponent(name)}`);
              await connectionsPage(new URLSearchParams());
              document.getElementById("connections-status").replaceChildren(noticeBox(
                `Connection ${name} is disconnected${deleted.revoked ? " and its tokens were revoked at the provider" : ""}.`));
            } catch (error) {
              status.replaceChildren(errorBox(error.message));
              event.target.disabled = false;
            }
          },
        }, `Yes, disconnect ${name}`);
        status.replaceChildren(el("div", { class: "error-box", role: "alert" },
          `Disconnect ${name}? Its credentials are deleted${connection.kind === "oauth2" ? " and its tokens revoked" : ""}; workflows using it fail until it is connected again. `,
          el("div", { class: "actions" }, confirmButton,
            el("button", { type: "button", onclick: () => status.replaceChildren() }, "Cancel"))));
        confirmButton.focus();
      },
    }, "Disconnect"));
    return el("tr", { "data-connection": name },
      el("td", {}, name),
      el("td", {}, connection.integration),
      el("td", { class: "hide-narrow" }, connection.kind),
      el("td", {}, connectionStatus(connection),
        connection.status_reason ? el("div", { class: "error small" }, connection.status_reason) : []),
      el("td", { class: "hide-narrow" }, connection.scopes.join(" ")),
      el("td", { class: "hide-narrow" }, connection.expires_at ? time(connection.expires_at) : ""),
      el("td", {}, actions));
  });
  show(
    el("h1", {}, "Connections"),
    oauthOutcome(params),
    status,
    connections.items.length === 0
      ? el("p", { class: "muted" }, "No connections yet.")
      : el("div", { class: "scroll" }, el("table", { id: "connections" },
        el("thead", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Integration"),
          el("th", { class: "hide-narrow" }, "Auth"), el("th", {}, "Status"),
          el("th", { class: "hide-narrow" }, "Scopes"), el("th", { class: "hide-narrow" }, "Expires"),
          el("th", {}, "Actions"))),
        el("tbody", {}, rows))),
    newConnectionForm(apps.items, catalog.providers),
    newOAuthAppForm(apps.items, catalog.providers));
  // The outcome is shown once: a reload or a later visit should not announce it again.
  if (params.has("oauth")) history.replaceState(null, "", "#/connections");
}

function newConnectionForm(apps, providers) {
  const status = el("div");
  const name = el("input", { required: true, pattern: "[a-z0-9\\-]+", autocomplete: "off" });
  const [integration, integrations] = integrationInput("connection-integrations", providers);
  const kind = el("select", {}, ["oauth2", "bearer", "api_key", "basic"].map((k) => el("option", { value: k }, k)));
  const app = el("select", {}, el("option", { value: "" }, "(the integration's name)"),
    apps.map((a) => el("option", { value: a.name }, `${a.name} (${a.integration})`)));
  const secret = el("input", { type: "password", autocomplete: "off" });
  const username = el("input", { autocomplete: "off" });
  const appField = field("new-connection-app", "OAuth app", app);
  const secretField = field("new-connection-secret", "Token, API key or password", secret, "Stored encrypted; never shown again.");
  const userField = field("new-connection-username", "Username", username);
  // One input per parameter the chosen provider declares (its shop, subdomain, tenant...).
  const paramFields = el("div", { id: "new-connection-params" });
  let paramInputs = [];
  const syncParams = () => {
    const chosen = providers.find((p) => p.name === integration.value.trim());
    paramInputs = (chosen ? chosen.params : []).map((param) => {
      const input = el("input", { autocomplete: "off", placeholder: param.default || "" });
      input.required = param.default === null;
      input.dataset.param = param.name;
      return input;
    });
    paramFields.replaceChildren(...paramInputs.map((input) =>
      field(`new-connection-param-${input.dataset.param}`, input.dataset.param, input,
        chosen.params.find((p) => p.name === input.dataset.param).description)));
  };
  integration.addEventListener("input", syncParams);
  const sync = () => {
    appField.hidden = kind.value !== "oauth2";
    secretField.hidden = kind.value === "oauth2";
    userField.hidden = kind.value !== "basic";
  };
  kind.addEventListener("change", sync);
  app.addEventListener("change", () => {
    const chosen = apps.find((a) => a.name === app.value);
    if (chosen && !integration.value) integration.value = chosen.integration;
    syncParams();
  });
  sync();
  syncParams();
  const form = el("form", { class: "panel form", id: "new-connection" },
    el("h2", {}, "New connection"),
    field("new-connection-name", "Name", name, "Lower-case letters, digits and dashes; steps refer to it."),
    field("new-connection-integration", "Integration", integration), integrations,
    field("new-connection-kind", "Authentication", kind),
    paramFields, appField, userField, secretField,
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Create connection")),
    status);
  onSubmit(form, status, async () => {
    const body = { name: name.value.trim(), integration: integration.value.trim(), kind: kind.value };
    if (kind.value === "oauth2" && app.value) body.oauth_app = app.value;
    if (kind.value === "bearer") body.token = secret.value;
    if (kind.value === "api_key") body.api_key = secret.value;
    if (kind.value === "basic") Object.assign(body, { username: username.value, password: secret.value });
    const params = Object.fromEntries(paramInputs.filter((input) => input.value.trim())
      .map((input) => [input.dataset.param, input.value.trim()]));
    if (Object.keys(params).length) body.params = params;
    await api("POST", "/api/v1/connections", body);
    await connectionsPage(new URLSearchParams());
    document.getElementById("connections-status").replaceChildren(noticeBox(
      kind.value === "oauth2" ? `Connection ${body.name} is created; connect it via OAuth.` : `Connection ${body.name} is created.`));
  });
  return form;
}

function newOAuthAppForm(apps, providers) {
  const status = el("div");
  const name = el("input", { pattern: "[a-z0-9\\-]+", autocomplete: "off" });
  const [integration, integrations] = integrationInput("app-integrations", providers);
  const clientId = el("input", { required: true, autocomplete: "off" });
  const clientSecret = el("input", { type: "password", autocomplete: "off" });
  const scopes = el("input", { autocomplete: "off", placeholder: "repo read:user" });
  const issuer = el("input", { type: "url", autocomplete: "off", placeholder: "https://idp.example.com" });
  const form = el("form", { class: "panel form", id: "new-oauth-app" },
    el("h2", {}, "New OAuth app"),
    apps.length ? el("p", { class: "muted" }, `Apps: ${apps.map((a) => a.name).join(", ")}`) : [],
    field("new-app-name", "Name", name, "Defaults to the integration's name."),
    field("new-app-integration", "Integration", integration), integrations,
    field("new-app-client-id", "Client id", clientId),
    field("new-app-client-secret", "Client secret", clientSecret, "Stored encrypted; never shown again."),
    field("new-app-scopes", "Scopes", scopes, "Separated by spaces."),
    field("new-app-issuer", "Issuer", issuer, "Optional: endpoints are discovered from its metadata (RFC 8414 / OpenID)."),
    el("p", { class: "muted" }, `Redirect URI to register at the provider: ${location.origin}/oauth/callback`),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Create OAuth app")),
    status);
  onSubmit(form, status, async () => {
    const body = {
      integration: integration.value.trim(),
      client_id: clientId.value.trim(),
      scopes: scopes.value.split(/\s+/).filter(Boolean),
    };
    if (name.value.trim()) body.name = name.value.trim();
    if (clientSecret.value) body.client_secret = clientSecret.value;
    if (issuer.value.trim()) body.issuer = issuer.value.trim();
    const created = await api("POST", "/api/v1/oauth-apps", body);
    await connectionsPage(new URLSearchParams());
    document.getElementById("connections-status").replaceChildren(noticeBox(`OAuth app ${created.name} is created.`));
  });
  return form;
}

// ---- webhook sources ----

// A button that puts `text` on the clipboard and says so in `said`; where the clipboard is not
// available, it selects `fallback` (an input holding the text) for Ctrl+C.
function copyButton(id, text, said, fallback) {
  return el("button", {
    type: "button", "data-copy": id, "aria-label": `Copy ${text}`,
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text);
        said.textContent = "Copied.";
      } catch {
        if (fallback) fallback.select();
        said.textContent = fallback ? "Selected: press Ctrl+C to copy." : "Copy it by hand: the clipboard is not available.";
      }
    },
  }, "Copy");
}

// A read-only copy of `text` with a button that puts it on the clipboard.
function copyable(id, label, text) {
  const input = el("input", { id, readonly: true, value: text, class: "copy-text" });
  const said = el("span", { class: "muted", role: "status" });
  return el("div", { class: "field" }, el("label", { for: id }, label),
    el("div", { class: "copy" }, input, copyButton(id, text, said, input)), said);
}

// A source's ingest URL in the list, with its copy button.
function sourceUrl(source) {
  const url = location.origin + source.url;
  const said = el("span", { class: "muted small", role: "status" });
  return [el("span", { class: "mono" }, url), " ", copyButton(`url-${source.name}`, url, said), " ", said];
}

async function sourcesPage() {
  const [sources, catalog] = await Promise.all([
    api("GET", "/api/v1/sources"),
    api("GET", "/api/v1/providers"),
  ]);
  show(
    el("h1", {}, "Webhook sources"),
    sources.items.length === 0
      ? el("p", { class: "muted" }, "No webhook sources yet.")
      : el("div", { class: "scroll" }, el("table", { id: "sources" },
        el("thead", {}, el("tr", {}, el("th", {}, "Source"), el("th", {}, "Provider"), el("th", { class: "hide-narrow" }, "URL"), el("th", { class: "hide-narrow" }, "Created"))),
        el("tbody", {}, sources.items.map((source) => el("tr", { "data-source": source.name },
          el("td", {}, el("a", { href: `#/sources/${encodeURIComponent(source.name)}` }, source.name)),
          el("td", {}, source.provider),
          el("td", { class: "hide-narrow url" }, sourceUrl(source)),
          el("td", { class: "hide-narrow" }, time(source.created_at))))))),
    newSourceForm(catalog.webhook_schemes));
}

function newSourceForm(schemes) {
  const status = el("div");
  const name = el("input", { required: true, pattern: "[a-z0-9\\-]+", autocomplete: "off" });
  // A scheme with settings (generic HMAC) is created through the API only.
  const provider = el("select", {}, schemes.filter((s) => !s.needs_settings)
    .map((s) => el("option", { value: s.name }, s.name)));
  const secret = el("input", { type: "password", required: true, autocomplete: "off" });
  const form = el("form", { class: "panel form", id: "new-source" },
    el("h2", {}, "New source"),
    field("new-source-name", "Name", name, "Workflows subscribe with on.webhook.source."),
    field("new-source-provider", "Provider", provider, "Generic HMAC sources are created through the API."),
    field("new-source-secret", "Signing secret", secret, "The secret the provider signs with; never shown again."),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Create source")),
    status);
  onSubmit(form, status, async () => {
    const created = await api("POST", "/api/v1/sources", { name: name.value.trim(), provider: provider.value, secret: secret.value });
    location.hash = `#/sources/${encodeURIComponent(created.name)}`;
  });
  return form;
}

function deliveryRows(deliveries) {
  return deliveries.map((delivery) => el("tr", { "data-delivery": delivery.delivery_id || delivery.id },
    el("td", {}, time(delivery.received_at)),
    el("td", { class: "mono" }, delivery.delivery_id || el("span", { class: "muted" }, "(none)")),
    el("td", { class: "hide-narrow" }, delivery.event_type || ""),
    el("td", {}, badge("accepted"),
      delivery.duplicates ? el("div", { class: "muted small" },
        `${delivery.duplicates} duplicate${delivery.duplicates === 1 ? "" : "s"}, last ${time(delivery.last_duplicate_at)}`) : []),
    el("td", {}, delivery.run_ids.length
      ? delivery.run_ids.map((id) => el("a", { href: `#/runs/${id}`, class: "run-link" }, id.slice(0, 8)))
      : el("span", { class: "muted" }, "no subscribed workflow"))));
}

async function sourcePage(name) {
  let sources, deliveries, rejections;
  try {
    [sources, deliveries, rejections] = await Promise.all([
      api("GET", "/api/v1/sources"),
      api("GET", `/api/v1/sources/${encodeURIComponent(name)}/deliveries?limit=20`),
      api("GET", `/api/v1/sources/${encodeURIComponent(name)}/rejections`),
    ]);
  } catch (error) {
    if (error.status === 404) return show(el("h1", {}, "Source not found"), el("p", {}, `No webhook source ${name} in this tenant.`));
    throw error;
  }
  const source = sources.items.find((s) => s.name === name);
  const tbody = el("tbody", {}, deliveryRows(deliveries.items));
  const more = el("div", { class: "actions" });
  const addMore = (cursor) => {
    more.replaceChildren();
    if (!cursor) return;
    more.append(el("button", {
      type: "button", id: "more-deliveries",
      onclick: async () => {
        const page = await api("GET", `/api/v1/sources/${encodeURIComponent(name)}/deliveries?limit=20&cursor=${encodeURIComponent(cursor)}`);
        tbody.append(...deliveryRows(page.items));
        addMore(page.next_cursor);
      },
    }, "Older deliveries"));
  };
  addMore(deliveries.next_cursor);
  show(
    el("p", {}, el("a", { href: "#/sources" }, "← Webhook sources")),
    el("h1", {}, `${name} `, el("span", { class: "muted" }, source.provider)),
    el("div", { class: "panel" },
      copyable("source-url", "URL to paste into the provider", location.origin + source.url),
      source.previous_valid_until
        ? el("p", { class: "muted" }, `The previous secret keeps verifying until ${time(source.previous_valid_until)}.`) : []),
    el("h2", {}, "Recent deliveries"),
    deliveries.items.length === 0
      ? el("p", { class: "muted" }, "No accepted deliveries yet.")
      : el("div", { class: "scroll" }, el("table", { id: "deliveries" },
        el("thead", {}, el("tr", {}, el("th", {}, "Received"), el("th", {}, "Delivery id"), el("th", { class: "hide-narrow" }, "Event"), el("th", {}, "Outcome"), el("th", {}, "Runs"))),
        tbody)),
    more,
    el("h2", {}, "Recent rejections"),
    rejections.items.length === 0
      ? el("p", { class: "muted" }, "No rejected deliveries.")
      : el("div", { class: "scroll" }, el("table", { id: "rejections" },
        el("thead", {}, el("tr", {}, el("th", {}, "Received"), el("th", {}, "Reason"), el("th", {}, "Message"))),
        el("tbody", {}, rejections.items.map((rejection) => el("tr", { "data-rejection": rejection.code },
          el("td", {}, time(rejection.received_at)),
          el("td", { class: "mono" }, rejection.code),
          el("td", {}, rejection.message)))))),
    rotateForm(name));
}

function rotateForm(name) {
  const status = el("div");
  const secret = el("input", { type: "password", required: true, autocomplete: "off" });
  const overlap = el("select", {},
    el("option", { value: "" }, "stops verifying at once"),
    ["1h", "24h", "7d"].map((d) => el("option", { value: d }, `keeps verifying for ${d}`)));
  const form = el("form", { class: "panel form", id: "rotate-secret" },
    el("h2", {}, "Rotate the signing secret"),
    field("rotate-secret-value", "New secret", secret, "Set the same secret at the provider."),
    field("rotate-secret-overlap", "The old secret", overlap, "Keep it verifying while the provider switches over."),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Rotate secret")),
    status);
  onSubmit(form, status, async () => {
    const body = { secret: secret.value };
    if (overlap.value) body.previous_valid_for = overlap.value;
    const rotated = await api("POST", `/api/v1/sources/${encodeURIComponent(name)}/secret`, body);
    secret.value = "";
    status.replaceChildren(noticeBox(rotated.previous_valid_until
      ? `The secret is rotated; the old one verifies until ${time(rotated.previous_valid_until)}.`
      : "The secret is rotated; the old one no longer verifies."));
  });
  return form;
}
