"""Regenerate the configuration declarations from ``components.settings.CONFIG_KEYS``.

    python -m tools.config_reference --write

rewrites the ``config:`` block of Pulumi.yaml and the configuration table of README.md; without ``--write`` it
prints them. The tests fail when either drifts from the key table.
"""

from __future__ import annotations

import argparse
import json
import sys

from components.settings import CONFIG_KEYS
from tools.synth import ROOT

TABLE_HEADER = "| key | type | default | meaning |\n|---|---|---|---|\n"


def pulumi_config_block() -> str:
    lines = ["config:"]
    for key in CONFIG_KEYS:
        lines += [f"  {key.name}:", f"    type: {key.type}"]
        if key.type == "array":
            lines += ["    items:", "      type: string"]
        if key.default is not None:
            lines.append(f"    default: {json.dumps(key.default)}")
        lines.append(f"    description: {json.dumps(key.description)}")
    return "\n".join(lines) + "\n"


def readme_row(name: str) -> str:
    key = next(k for k in CONFIG_KEYS if k.name == name)
    default = "(required)" if key.default is None else f"`{json.dumps(key.default)}`"
    return f"| `{key.name}` | {key.type} | {default} | {key.description} |"


def readme_table() -> str:
    return TABLE_HEADER + "\n".join(readme_row(k.name) for k in CONFIG_KEYS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.config_reference", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update Pulumi.yaml and README.md in place")
    args = parser.parse_args(argv)
    if not args.write:
        print(pulumi_config_block())
        print(readme_table())
        return 0
    project = ROOT / "Pulumi.yaml"
    head = project.read_text(encoding="utf-8").split("config:\n")[0]
    project.write_text(head + pulumi_config_block(), encoding="utf-8")
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    start = text.index(TABLE_HEADER)
    end = text.index("\n\n", start)
    readme.write_text(text[:start] + readme_table() + text[end:], encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
