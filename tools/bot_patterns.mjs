// Writes handlers/common/bot_patterns.json from the pinned isbot package (npm run bots:generate), or prints it
// (--print, which the tests compare with the committed file): updating the list is `npm install isbot@<v>` + this.
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { list } = require("isbot");
const { version } = require("isbot/package.json");
const out = new URL("../handlers/common/bot_patterns.json", import.meta.url);
const document = JSON.stringify({
  source: "https://github.com/omrilotan/isbot (npm isbot, Unlicense)",
  package: "isbot",
  version,
  // JavaScript regular expressions, matched case-insensitively against the user agent (isbot's own semantics).
  patterns: list,
}, null, 2) + "\n";
if (process.argv.includes("--print")) {
  process.stdout.write(document);
} else {
  writeFileSync(out, document);
  process.stdout.write(`wrote ${list.length} patterns of isbot ${version} to ${out.pathname}\n`);
}
