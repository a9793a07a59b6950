"""Render the repository's API Gateway mapping templates with airspeed (the Velocity engine LocalStack uses).

``$input``, ``$util`` and ``$context`` are our own stand-ins, written to API Gateway's documented behaviour:
``$input.json`` JSON-encodes the selected value, ``$util.escapeJavaScript`` follows Apache Commons Lang (it escapes
``'`` as ``\\'``, which is not valid JSON), ``$util.base64Encode`` encodes UTF-8.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

import airspeed

_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\['([^']*)'\]")


def json_path(document: Any, path: str) -> Any:
    """The subset of JSONPath the templates use: ``$``, ``.name``, ``[index]``, ``['name']``."""
    if not path.startswith("$"):
        raise ValueError(f"unsupported JSONPath {path!r}")
    value, position = document, 1
    while position < len(path):
        match = _STEP.match(path, position)
        if match is None:
            raise ValueError(f"unsupported JSONPath {path!r}")
        name, index, quoted = match.groups()
        try:
            value = value[int(index)] if index is not None else value[name if name is not None else quoted]
        except (KeyError, IndexError, TypeError):
            return None
        position = match.end()
    return value


class Input:
    def __init__(self, body: Any, params: dict[str, str] | None = None) -> None:
        self.body = body
        self._params = params or {}

    def path(self, path: str) -> Any:
        return json_path(self.body, path)

    def json(self, path: str) -> str:
        return json.dumps(json_path(self.body, path), ensure_ascii=False)

    def params(self, name: str | None = None) -> Any:
        return self._params if name is None else self._params.get(name, "")


def escape_javascript(text: str) -> str:
    """Apache Commons Lang's escapeJavaScript over Java's UTF-16 code units (what API Gateway's $util runs)."""
    out = []
    data = text.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        code = int.from_bytes(data[i:i + 2], "big")
        char = chr(code)
        if code > 0x7F:
            out.append(f"\\u{code:04X}")
        elif code < 32:
            out.append({8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}.get(code, f"\\u{code:04X}"))
        elif char in "'\"\\/":
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


class Util:
    def base64Encode(self, text: str) -> str:  # noqa: N802 (API Gateway's name)
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    def escapeJavaScript(self, text: str) -> str:  # noqa: N802
        return escape_javascript(text)


@dataclass
class Rendered:
    text: str
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def status_override(self) -> Any:
        return self.context["responseOverride"]["status"]

    @property
    def header_overrides(self) -> dict[str, Any]:
        return dict(self.context["responseOverride"]["header"])

    def json(self) -> Any:
        return json.loads(self.text)


def render(template: str, body: Any = None, *, headers: dict[str, str] | None = None, request_id: str = "req-1",
           request_time_epoch: int = 1_764_150_000_000, source_ip: str = "203.0.113.9",
           user_agent: str = "Mozilla/5.0", error: dict[str, str] | None = None,
           authorizer: dict[str, Any] | None = None) -> Rendered:
    context: dict[str, Any] = {
        "requestId": request_id,
        "requestTimeEpoch": request_time_epoch,
        "identity": {"sourceIp": source_ip, "userAgent": user_agent},
        "responseOverride": {"status": None, "header": {}},
        "error": error or {},
        "authorizer": authorizer or {},  # a Lambda authorizer's principalId and context; empty without one
    }
    text = airspeed.Template(template).merge({"input": Input(body, headers), "util": Util(), "context": context})
    return Rendered(text, context)
