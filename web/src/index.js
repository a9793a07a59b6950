// Entry of the classic-script build (IIFE): one tracker per page, exposed as globalThis.Clickstream.
// __CLICKSTREAM_LIMITS__ is replaced at build time by the limits generated from the collection schema.
import { createTracker } from "./tracker.js";

/* global __CLICKSTREAM_LIMITS__ */
globalThis.Clickstream ||= createTracker(globalThis, __CLICKSTREAM_LIMITS__);
