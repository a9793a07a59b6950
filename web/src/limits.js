// Build-time only (Node): turns the collection API's JSON Schema into the compact limits the tracker checks
// before queueing. Unknown keywords fail loudly, so a schema change cannot be silently ignored by the tracker.

const PLACEHOLDER = "@@EVENT_TYPES@@";
// Unbounded limits as finite numbers: the limits are inlined into the bundle as JSON, where Infinity is null.
const BIG = Number.MAX_SAFE_INTEGER;
const KNOWN = new Set(["type", "minLength", "maxLength", "pattern", "minimum", "maximum", "enum", "minItems",
  "maxItems", "items", "maxProperties", "additionalProperties", "patternProperties"]);

function fail(path, why) {
  throw new Error(`collect_events schema at ${path}: ${why}`);
}

function field(spec, path) {
  for (const key of Object.keys(spec)) if (!KNOWN.has(key)) fail(path, `unsupported keyword ${key}`);
  const types = [].concat(spec.type);
  if (types.length !== 1) fail(path, "exactly one type expected");
  const [type] = types;
  if (type === "string") {
    const out = { t: "s", n: spec.minLength ?? 0, x: spec.maxLength ?? BIG };
    if (spec.pattern) out.p = new RegExp(spec.pattern).source;
    if (spec.enum && !(spec.enum.length === 1 && spec.enum[0] === PLACEHOLDER)) out.e = spec.enum;
    return out;
  }
  if (type === "integer") return { t: "i", n: spec.minimum ?? -BIG, x: spec.maximum ?? BIG };
  if (type === "array") return { t: "a", n: spec.minItems ?? 0, x: spec.maxItems ?? BIG, i: field(spec.items, `${path}.items`) };
  if (type === "object") {
    if (spec.additionalProperties !== false) fail(path, "additionalProperties must be false");
    const patterns = Object.entries(spec.patternProperties ?? {});
    if (patterns.length !== 1) fail(path, "exactly one patternProperties entry expected");
    const [[keyPattern, value]] = patterns;
    for (const key of Object.keys(value)) if (!["type", "maxLength"].includes(key)) fail(path, `unsupported value keyword ${key}`);
    return { t: "o", x: spec.maxProperties ?? BIG, k: keyPattern, v: [].concat(value.type), l: value.maxLength ?? BIG };
  }
  return fail(path, `unsupported type ${type}`);
}

/** @returns {{maxBatch: number, required: string[], fields: Record<string, object>}} */
export function limitsFromSchema(schema) {
  const batch = schema?.properties?.events;
  const event = batch?.items;
  if (!event || event.additionalProperties !== false) fail("events.items", "an object with additionalProperties false expected");
  const fields = {};
  for (const [name, spec] of Object.entries(event.properties)) fields[name] = field(spec, `events.items.${name}`);
  return { maxBatch: batch.maxItems ?? 500, required: event.required ?? [], fields };
}
