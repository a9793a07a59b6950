"""Data preparation for training: Firehose output (GZIP JSON lines) → Personalize interactions CSV, in three steps
that scale with the data (run by the training state machine):

1. ``map`` (one call per batch of raw objects, in a Distributed Map): stream each object line by line, keep the valid
   events of known readers, and write them to ``shards`` CSV files by hash of the user id, so every event of a user —
   and every copy of an event — lands in one shard;
2. ``reduce`` (one call per shard): drop repeated event ids, write ``interactions/part-<k>.csv`` with a header, count
   interactions, users and items;
3. ``summarize``: add the counts up, publish the popular items the recommendations fallback serves, write the items
   CSV from the items store, and say whether there is enough data to train.

Memory stays bounded: objects are streamed, rows go to local files (uploaded when complete), and only one shard's
event ids are held at a time. Malformed lines go to ``rejects/`` with their counts.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import Any

from common.bots import is_bot
from common.catalog import BY_ID_PREFIX, POPULAR_KEY
from common.contract import ITEM_COLUMNS, Key
from common.events import InvalidRecordError, envelope_event, read_envelope
from common.interactions import INTERACTIONS_HEADER as _INTERACTION_COLUMNS
from common.interactions import interaction_row

INTERACTIONS_HEADER = list(_INTERACTION_COLUMNS)
ITEMS_HEADER = list(ITEM_COLUMNS)
POPULAR_ITEMS = 100


def run_prefix(run_id: str) -> str:
    return f"{Key.PREPARED}{run_id}/"


@dataclass
class MapCounts:
    lines: int = 0
    accepted: int = 0
    anonymous: int = 0
    malformed: int = 0
    bots: int = 0


def _lines(s3: Any, bucket: str, key: str) -> Iterator[str]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    stream: io.IOBase = gzip.GzipFile(fileobj=body) if key.endswith(".gz") else body
    for raw in io.TextIOWrapper(stream, encoding="utf-8", errors="replace"):  # type: ignore[type-var]
        if raw.strip():
            yield raw


def _shard(user_id: str, shards: int) -> int:
    return zlib.crc32(user_id.encode()) % shards


def map_objects(s3: Any, bucket: str, keys: Sequence[str], run_id: str, shards: int,
                event_types: tuple[str, ...]) -> MapCounts:
    """Step 1: stream the raw objects ``keys`` into per-shard staging CSV files (EVENT_ID first)."""
    counts = MapCounts()
    batch_id = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]  # a retried batch overwrites
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as files:
        paths = [os.path.join(tmp, f"{k}.csv") for k in range(shards)]
        writers = [csv.writer(files.enter_context(open(p, "w", newline="", encoding="utf-8"))) for p in paths]
        rejects_path = os.path.join(tmp, "rejects.jsonl")
        rejects = files.enter_context(open(rejects_path, "w", encoding="utf-8"))
        for key in keys:
            for line in _lines(s3, bucket, key):
                counts.lines += 1
                try:
                    event = envelope_event(read_envelope(json.loads(line)), event_types)
                except (ValueError, InvalidRecordError) as error:
                    counts.malformed += 1
                    rejects.write(json.dumps({"key": key, "reason": str(error)[:200], "line": line[:10_000]}) + "\n")
                    continue
                if is_bot(event.user_agent):
                    counts.bots += 1  # crawlers and automation do not train the model either
                    continue
                if event.user_id is None:
                    counts.anonymous += 1  # anonymous readers do not train the model
                    continue
                counts.accepted += 1
                # The exact twin of what PutEvents sent for it (``common.interactions``), after the event id.
                writers[_shard(event.user_id, shards)].writerow([event.event_id, *interaction_row(event)])
        files.close()
        prefix = run_prefix(run_id)
        for k, path in enumerate(paths):
            if os.path.getsize(path):
                s3.upload_file(path, bucket, f"{prefix}staging/shard={k:03d}/{batch_id}.csv")
        if counts.malformed:
            s3.upload_file(rejects_path, bucket, f"{prefix}rejects/{batch_id}.jsonl")
    return counts


@dataclass
class ShardCounts:
    interactions: int
    duplicates: int
    users: int
    users_with_two: int
    top_items: list[tuple[str, int]]


def _csv_rows(s3: Any, bucket: str, key: str) -> Iterator[list[str]]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    yield from csv.reader(io.TextIOWrapper(body, encoding="utf-8", newline=""))


def _keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"]


def reduce_shard(s3: Any, bucket: str, run_id: str, shard: int) -> ShardCounts:
    """Step 2: one shard's staging files → ``interactions/part-<shard>.csv`` without repeated event ids."""
    prefix = run_prefix(run_id)
    seen: set[str] = set()
    per_user: Counter[str] = Counter()
    per_item: Counter[str] = Counter()
    duplicates = 0
    with tempfile.NamedTemporaryFile("w", newline="", encoding="utf-8", suffix=".csv", delete=False) as out:
        writer = csv.writer(out)
        writer.writerow(INTERACTIONS_HEADER)
        for key in _keys(s3, bucket, f"{prefix}staging/shard={shard:03d}/"):
            for event_id, *row in _csv_rows(s3, bucket, key):
                if event_id in seen:
                    duplicates += 1
                    continue
                seen.add(event_id)
                per_user[row[0]] += 1
                per_item[row[1]] += 1
                writer.writerow(row)
    try:
        if seen:
            s3.upload_file(out.name, bucket, f"{prefix}interactions/part-{shard:03d}.csv")
    finally:
        os.unlink(out.name)
    return ShardCounts(interactions=len(seen), duplicates=duplicates, users=len(per_user),
                       users_with_two=sum(1 for n in per_user.values() if n >= 2),
                       top_items=per_item.most_common(POPULAR_ITEMS))


MAX_TEXTUAL = 20_000  # characters Personalize keeps of a textual field


def item_row(item: Mapping[str, Any]) -> list[Any]:
    """An items store document as a row of the items CSV (``ITEM_COLUMNS``)."""
    return [item["itemId"], item["creationTimestamp"], item.get("category", ""), "|".join(item.get("tags", [])),
            str(item.get("title", ""))[:MAX_TEXTUAL], item.get("url", "")]


def write_items_csv(s3: Any, bucket: str, run_id: str) -> int:
    """The items CSV of this run from the items store (latest version of each item)."""
    count = 0
    with tempfile.NamedTemporaryFile("w", newline="", encoding="utf-8", suffix=".csv", delete=False) as out:
        writer = csv.writer(out)
        writer.writerow(ITEMS_HEADER)
        for key in _keys(s3, bucket, BY_ID_PREFIX):
            item = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            writer.writerow(item_row(item))
            count += 1
    try:
        if count:
            s3.upload_file(out.name, bucket, f"{run_prefix(run_id)}items/items.csv")
    finally:
        os.unlink(out.name)
    return count


def summarize(s3: Any, bucket: str, run_id: str, maps: Sequence[Mapping[str, Any]],
              shards: Sequence[Mapping[str, Any]], min_interactions: int, min_users_with_two: int) -> dict[str, Any]:
    """Step 3: totals, the popular items, the items CSV, and the sufficiency verdict."""
    totals: dict[str, Any] = {name: sum(int(m.get(name, 0)) for m in maps)
                              for name in ("lines", "accepted", "anonymous", "malformed", "bots")}
    for name in ("interactions", "duplicates", "users", "users_with_two"):
        totals[name] = sum(int(s.get(name, 0)) for s in shards)
    # Shards split users, not items: add each shard's top counts up (an approximation of the global top list).
    merged: Counter[str] = Counter()
    for shard in shards:
        merged.update(dict(shard.get("top_items", [])))
    popular = merged.most_common(POPULAR_ITEMS)
    if popular:
        s3.put_object(Bucket=bucket, Key=POPULAR_KEY, ContentType="application/json", Body=json.dumps(
            {"runId": run_id, "items": [{"itemId": item, "score": count} for item, count in popular]}).encode())
    totals["items"] = write_items_csv(s3, bucket, run_id)
    totals["sufficient"] = (totals["interactions"] >= min_interactions
                            and totals["users_with_two"] >= min_users_with_two)
    totals["interactionsLocation"] = f"s3://{bucket}/{run_prefix(run_id)}interactions/"
    totals["itemsLocation"] = f"s3://{bucket}/{run_prefix(run_id)}items/items.csv"
    return totals


def as_dict(counts: MapCounts | ShardCounts) -> dict[str, Any]:
    return asdict(counts)


def metric_gate(metric: str, tolerance: float, new: Mapping[str, Any],
                current: Mapping[str, Any] | None) -> dict[str, Any]:
    """Promote the new solution version unless its ``metric`` is worse than the current one's by more than
    ``tolerance`` (absolute). The first version (no current campaign) is always promoted."""
    new_value = new.get(metric)
    if not isinstance(new_value, (int, float)):
        raise ValueError(f"the new solution version has no metric {metric!r}; it has {sorted(new)}")
    if current is None:
        return {"promote": True, "reason": "first version", "new": new_value, "current": None}
    current_value = current.get(metric)
    if not isinstance(current_value, (int, float)):
        return {"promote": True, "reason": f"the current version has no {metric}", "new": new_value,
                "current": None}
    promote = new_value >= current_value - tolerance
    return {"promote": promote, "new": new_value, "current": current_value,
            "reason": f"{metric} {new_value:.4f} vs {current_value:.4f} (tolerance {tolerance})"}
