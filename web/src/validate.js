// Checks one event against the limits generated from the collection schema (see limits.js), so a bad event is
// refused before it is queued instead of making its whole batch fail with 400 at the API.

// Strings a template renders for a missing value: the API would accept them and Personalize would silently
// lump every such reader or item together.
const PLACEHOLDERS = ["null", "undefined", "NaN", "none", "nil"];

export function compile(limits, eventTypes) {
  const { fields, required } = limits;
  const ok = (s, v) => {
    if (s.t === "s") {
      return typeof v === "string" && v.length >= s.n && v.length <= s.x && !PLACEHOLDERS.includes(v)
        && (!s.p || new RegExp(s.p).test(v)) && (!s.e || s.e.includes(v));
    }
    if (s.t === "i") return Number.isInteger(v) && v >= s.n && v <= s.x;
    if (s.t === "a") return Array.isArray(v) && v.length >= s.n && v.length <= s.x && v.every((x) => ok(s.i, x));
    if (!v || typeof v !== "object" || Array.isArray(v)) return false;
    const keys = Object.keys(v);
    return keys.length <= s.x && keys.every((k) => new RegExp(s.k).test(k) && value(s, v[k]));
  };
  const value = (s, v) => {
    const type = typeof v === "number" ? (Number.isInteger(v) ? "integer" : "number") : typeof v;
    const allowed = s.v.includes(type) || (type === "integer" && s.v.includes("number"));
    return allowed && (type === "number" || type === "integer" ? Number.isFinite(v) : type !== "string" || v.length <= s.l);
  };
  const field = (name, v) => !!fields[name] && ok(fields[name], v) && (name !== "eventType" || eventTypes.includes(v));
  const event = (e) => required.every((k) => k in e) && Object.keys(e).every((k) => field(k, e[k]));
  return { field, event };
}
