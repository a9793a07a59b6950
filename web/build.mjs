// Builds the tracker into web/dist/ (npm run build):
//   clickstream.min.js   IIFE for <script src>; also importable by a module for its side effect
//   clickstream.min.mjs  ES module exporting the same tracker (default export and named functions)
// The event limits are generated from the collection API's schema at build time.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { limitsFromSchema } from "./src/limits.js";

const here = dirname(fileURLToPath(import.meta.url));
export const SCHEMA = join(here, "..", "handlers", "common", "schemas", "collect_events.schema.json");

export async function buildTracker(outdir = join(here, "dist"), schemaPath = SCHEMA) {
  const limits = limitsFromSchema(JSON.parse(readFileSync(schemaPath, "utf8")));
  const common = {
    bundle: true, minify: true, target: "es2020", legalComments: "none", logLevel: "warning",
    define: { __CLICKSTREAM_LIMITS__: JSON.stringify(limits) },
  };
  await build({ ...common, entryPoints: [join(here, "src", "index.js")], format: "iife", outfile: join(outdir, "clickstream.min.js") });
  await build({ ...common, entryPoints: [join(here, "src", "esm.js")], format: "esm", outfile: join(outdir, "clickstream.min.mjs") });
  return { outdir, limits };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { outdir } = await buildTracker();
  console.log(`built ${outdir}/clickstream.min.js and clickstream.min.mjs`);
}
