"""The items store: what POST /items keeps in S3, what the training flow imports, and what the fallback serves.

Layout in the data bucket:
- ``items/by-id/<itemId>.json`` — the latest version of each item (the training flow's items import reads these);
- ``items/by-time/<inverted creation time>-<itemId>.json`` — the same item keyed so that an ascending S3 listing
  returns the newest items first, without reading the whole store;
- ``published/popular-items.json`` — written by the training flow: ``{"items": [{"itemId": ..., "score": ...}]}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import fastjsonschema

from common.contract import Key

SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "items.schema.json"
BY_ID_PREFIX = Key.ITEMS_BY_ID
BY_TIME_PREFIX = Key.ITEMS_BY_TIME
POPULAR_KEY = Key.POPULAR_ITEMS
_LATEST_TIMESTAMP = 9_999_999_999
MAX_ITEMS_PER_PUT = 10  # PutItems' limit


@dataclass(frozen=True)
class Item:
    item_id: str
    creation_timestamp: int
    category: str | None = None
    tags: tuple[str, ...] = ()
    title: str | None = None
    url: str | None = None

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"itemId": self.item_id, "creationTimestamp": self.creation_timestamp}
        if self.category:
            doc["category"] = self.category
        if self.tags:
            doc["tags"] = list(self.tags)
        if self.title:
            doc["title"] = self.title
        if self.url:
            doc["url"] = self.url
        return doc

    def by_id_key(self) -> str:
        return f"{BY_ID_PREFIX}{quote(self.item_id, safe='')}.json"

    def by_time_key(self) -> str:
        return f"{BY_TIME_PREFIX}{_LATEST_TIMESTAMP - self.creation_timestamp:010d}-{quote(self.item_id, safe='')}.json"

    def personalize_item(self) -> dict[str, str]:
        """One ``items`` entry of PutItems: properties in the items dataset's fields, multi-values joined by ``|``."""
        properties: dict[str, Any] = {"creationTimestamp": self.creation_timestamp}
        if self.category:
            properties["category"] = self.category
        if self.tags:
            properties["tags"] = "|".join(self.tags)
        # TITLE (textual) and URL: what metadata with recommendations returns (the dataset schema has both).
        if self.title:
            properties["title"] = self.title
        if self.url:
            properties["url"] = self.url
        return {"itemId": self.item_id, "properties": json.dumps(properties, separators=(",", ":"), ensure_ascii=False)}


class InvalidItemsError(ValueError):
    """The request body is not a valid batch of items; the message says what is wrong."""


@lru_cache(maxsize=1)
def _validator() -> Any:
    return fastjsonschema.compile(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def parse_items(body: Any) -> list[Item]:
    try:
        _validator()(body)
    except fastjsonschema.JsonSchemaValueException as error:
        raise InvalidItemsError(error.message) from None
    items = [Item(item_id=i["itemId"], creation_timestamp=i["creationTimestamp"], category=i.get("category"),
                  tags=tuple(i.get("tags", ())), title=i.get("title"), url=i.get("url"))
             for i in body["items"]]
    ids = [i.item_id for i in items]
    if len(set(ids)) != len(ids):
        raise InvalidItemsError("each itemId may appear once per request")
    return items


def newest_from_keys(keys: Sequence[str], limit: int) -> list[str]:
    """Item ids from ``by-time`` keys (already newest first), each once."""
    seen: list[str] = []
    for key in keys:
        item_id = unquote(key[len(BY_TIME_PREFIX):].split("-", 1)[1].removesuffix(".json"))
        if item_id not in seen:
            seen.append(item_id)
        if len(seen) == limit:
            break
    return seen


def popular_from_document(document: Mapping[str, Any], limit: int) -> list[str]:
    items = document.get("items") if isinstance(document, Mapping) else None
    if not isinstance(items, list):
        return []
    return [str(i["itemId"]) for i in items if isinstance(i, Mapping) and "itemId" in i][:limit]
