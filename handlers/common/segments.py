"""User segments: the input file of a batch segment job, written by the segments state machine's first step.

A request names posts (``items``: the readers most likely to read them, Item-Affinity), a category (``category``: the
readers most drawn to it, Item-Attribute-Affinity), or nothing (the scheduled run: the ``newest`` posts of the items
store, Item-Affinity). Input and output are JSON lines in the data bucket (``Key.SEGMENTS_INPUT``,
``Key.SEGMENTS_OUTPUT``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from common.catalog import BY_TIME_PREFIX, newest_from_keys
from common.contract import Key

ITEM_AFFINITY, ITEM_ATTRIBUTE_AFFINITY = "itemAffinity", "itemAttributeAffinity"
MAX_ITEMS = 100
DEFAULT_NEWEST = 10
_ITEM_ID = re.compile(r"^[!#-\[\]-~]{1,128}$")  # the items store's itemId rule
_CATEGORY = re.compile(r'^[^|"\\]{1,64}$')  # a CATEGORY value, quotable in an item attribute expression


class InvalidSegmentRequestError(ValueError):
    """The request cannot make a segment job; the message says why."""


def segment_lines(request: Mapping[str, Any], newest: list[str]) -> tuple[str, list[dict[str, str]]]:
    """The recipe kind and the input lines of ``request`` (``newest``: the store's newest post ids)."""
    items, category = request.get("items"), request.get("category")
    if items is not None and category is not None:
        raise InvalidSegmentRequestError("give items or a category, not both")
    if category is not None:
        if not isinstance(category, str) or not _CATEGORY.match(category):
            raise InvalidSegmentRequestError("category must be 1-64 characters without |, \" or \\")
        return ITEM_ATTRIBUTE_AFFINITY, [{"itemAttributes": f'ITEMS.CATEGORY = "{category}"'}]
    if items is None:
        if not newest:
            raise InvalidSegmentRequestError("the items store has no posts yet: name the posts (items)")
        items = newest
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS or not all(
            isinstance(i, str) and _ITEM_ID.match(i) for i in items):
        raise InvalidSegmentRequestError(f"items must be 1-{MAX_ITEMS} item ids")
    return ITEM_AFFINITY, [{"itemId": item} for item in dict.fromkeys(items)]


def write_segment_input(s3: Any, bucket: str, run_id: str, request: Mapping[str, Any],
                        solutions: Mapping[str, str]) -> dict[str, Any]:
    """Write the job's input; answer the solution to use and the S3 paths of input and output."""
    newest: list[str] = []
    if request.get("items") is None and request.get("category") is None:
        count = int(request.get("newest", DEFAULT_NEWEST))
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=BY_TIME_PREFIX, MaxKeys=count * 2)
        newest = newest_from_keys([o["Key"] for o in listed.get("Contents", [])], count)
    kind, lines = segment_lines(request, newest)
    key = f"{Key.SEGMENTS_INPUT}{run_id}.jsonl"
    s3.put_object(Bucket=bucket, Key=key, ContentType="application/jsonlines",
                  Body="".join(json.dumps(line) + "\n" for line in lines).encode())
    return {"recipe": kind, "solutionArn": solutions[kind], "lines": len(lines),
            "input": f"s3://{bucket}/{key}", "output": f"s3://{bucket}/{Key.SEGMENTS_OUTPUT}{run_id}/"}
