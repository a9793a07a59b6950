import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { limitsFromSchema } from "../src/limits.js";
import { compile } from "../src/validate.js";
import { LIMITS, SCHEMA, T0 } from "./fakes.js";

const TYPES = ["view", "click", "read", "share"];
const clone = (x) => JSON.parse(JSON.stringify(x));
const good = () => ({ eventId: "e-1", eventType: "click", sessionId: "s-1", itemId: "post-1", timestamp: T0 });

describe("limits generated from collect_events.schema.json", () => {
  it("carries the schema's id, timestamp, impression and properties limits", () => {
    const f = LIMITS.fields;
    assert.deepEqual([f.eventId.n, f.eventId.x, f.sessionId.x, f.userId.x, f.itemId.x, f.recommendationId.x], [1, 64, 128, 128, 128, 40]);
    assert.equal(f.itemId.p, "^[!#-\\[\\]-~]+$");
    assert.deepEqual([f.timestamp.n, f.timestamp.x], [1577836800000, 4102444800000]);
    assert.deepEqual([f.impression.n, f.impression.x, f.impression.i.x], [1, 25, 128]);
    assert.deepEqual([f.properties.x, f.properties.k, f.properties.v, f.properties.l], [5, "^[a-zA-Z][a-zA-Z0-9_]{0,31}$", ["string", "number", "boolean"], 64]);
    assert.equal(f.eventType.e, undefined); // the @@EVENT_TYPES@@ placeholder: types come from init
    assert.deepEqual(LIMITS.required, ["eventId", "eventType", "sessionId", "itemId", "timestamp"]);
    assert.equal(LIMITS.maxBatch, 500);
  });

  it("survives being inlined as JSON into the bundle (no Infinity turning into null)", () => {
    assert.deepEqual(JSON.parse(JSON.stringify(LIMITS)), LIMITS);
  });

  it("follows a change of the schema", () => {
    const schema = clone(SCHEMA);
    schema.properties.events.items.properties.itemId.maxLength = 10;
    schema.properties.events.items.properties.eventType.enum = ["click"];
    const v = compile(limitsFromSchema(schema), TYPES);
    assert.equal(v.event({ ...good(), itemId: "x".repeat(10) }), true);
    assert.equal(v.event({ ...good(), itemId: "x".repeat(11) }), false);
    assert.equal(v.event({ ...good(), eventType: "view" }), false); // a real enum in the schema is enforced too
  });

  it("fails the build on a keyword it does not understand", () => {
    const schema = clone(SCHEMA);
    schema.properties.events.items.properties.itemId.format = "uri";
    assert.throws(() => limitsFromSchema(schema), /itemId: unsupported keyword format/);
    const open = clone(SCHEMA);
    delete open.properties.events.items.additionalProperties;
    assert.throws(() => limitsFromSchema(open), /additionalProperties false/);
  });
});

describe("event validation", () => {
  const v = compile(LIMITS, TYPES);
  const cases = {
    "a minimal event": [{}, true],
    "every optional field": [{ userId: "reader-1", recommendationId: "rid-1", impression: ["a", "b"], properties: { section: "x", n: 1.5, i: 2, ok: false } }, true],
    "an id with a space": [{ itemId: "post 1" }, false],
    "an id with a quote": [{ itemId: 'post"1' }, false],
    "an id with a backslash": [{ itemId: "post\\1" }, false],
    "a non-ASCII id": [{ itemId: "café" }, false],
    "an empty id": [{ sessionId: "" }, false],
    "a 65-char event id": [{ eventId: "e".repeat(65) }, false],
    "a 64-char event id": [{ eventId: "e".repeat(64) }, true],
    "a 129-char user id": [{ userId: "u".repeat(129) }, false],
    "the placeholder user id 'null'": [{ userId: "null" }, false],
    "the placeholder item id 'undefined'": [{ itemId: "undefined" }, false],
    "a seconds timestamp": [{ timestamp: 1764150000 }, false],
    "a fractional timestamp": [{ timestamp: T0 + 0.5 }, false],
    "a timestamp after 2100": [{ timestamp: 4102444800001 }, false],
    "an unknown event type": [{ eventType: "purchase" }, false],
    "an extra field": [{ page: "/" }, false],
    "26 impressions": [{ impression: Array.from({ length: 26 }, (_, i) => `p${i}`) }, false],
    "an empty impression": [{ impression: [] }, false],
    "a bad impression id": [{ impression: ["ok", "not ok"] }, false],
    "6 properties": [{ properties: { a: 1, b: 2, c: 3, d: 4, e: 5, f: 6 } }, false],
    "a property key starting with a digit": [{ properties: { "1a": 1 } }, false],
    "a 33-char property key": [{ properties: { ["k".repeat(33)]: 1 } }, false],
    "a 65-char property value": [{ properties: { a: "v".repeat(65) } }, false],
    "a nested property value": [{ properties: { a: { b: 1 } } }, false],
    "a null property value": [{ properties: { a: null } }, false],
    "an infinite property value": [{ properties: { a: Infinity } }, false],
    "properties as an array": [{ properties: ["a"] }, false],
  };
  for (const [name, [patch, expected]] of Object.entries(cases)) {
    it(`${expected ? "accepts" : "refuses"} ${name}`, () => {
      assert.equal(v.event({ ...good(), ...patch }), expected);
    });
  }

  it("refuses an event missing a required field", () => {
    for (const k of LIMITS.required) {
      const e = good();
      delete e[k];
      assert.equal(v.event(e), false, k);
    }
  });
});
