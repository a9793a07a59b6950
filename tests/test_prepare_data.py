"""Data preparation on moto S3 with realistic Firehose output: GZIP JSON lines over several partitions, malformed
and duplicate lines, anonymous readers, and an input large enough to show memory stays bounded."""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import shutil
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from common.events import decode_record, parse_event
from common.interactions import interaction_row
from common.putevents import put_events_event
from common.training_data import INTERACTIONS_HEADER, ITEMS_HEADER, item_row, map_objects, reduce_shard, summarize
from tests.conftest import FakeLambdaContext
from tests.deployed import function_environment
from tests.test_event_processor import click

BUCKET = "cp-dev-euw1-raw-123456789012"
TYPES = ("view", "click", "read", "share")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "t",
                        "AWS_SECRET_ACCESS_KEY": "t"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield client


def firehose_object(s3: Any, key: str, lines: list[str]) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(("\n".join(lines) + "\n").encode()))


def line(event: dict[str, Any]) -> str:
    return json.dumps({"v": 1, "event": event, "server": {"requestId": "r", "receivedAt": 1}})


def rows(s3: Any, prefix: str) -> list[dict[str, str]]:
    out = []
    for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []):
        text = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read().decode()
        reader = csv.DictReader(io.StringIO(text))
        assert reader.fieldnames == INTERACTIONS_HEADER
        out += list(reader)
    return out


def prepare(s3: Any, keys: list[str], shards: int = 4, **thresholds: int) -> dict[str, Any]:
    maps = [vars(map_objects(s3, BUCKET, keys, "run-1", shards, TYPES))]
    reduced = [vars(reduce_shard(s3, BUCKET, "run-1", k)) for k in range(shards)]
    return summarize(s3, BUCKET, "run-1", maps, reduced, min_interactions=thresholds.get("interactions", 1),
                     min_users_with_two=thresholds.get("users", 1))


def test_firehose_output_becomes_interactions_csv(s3: Any) -> None:
    good = click(1, user="u-1", recommendationId="rid-1", impression=["post-1", "post-2"])
    firehose_object(s3, "events/year=2026/month=11/day=26/hour=10/a.jsonl.gz", [
        line(good), line(good),  # a duplicate (Firehose may deliver a record twice)
        line(click(2, user=None)),  # anonymous: not trained on
        "{broken json", json.dumps({"v": 2}), line({"eventId": "x"}),  # malformed three ways
    ])
    firehose_object(s3, "events/year=2026/month=11/day=27/hour=00/b.jsonl.gz",
                    [line(click(3, user="u-1")), line(click(4, user="u-2", eventType="read"))])

    totals = prepare(s3, ["events/year=2026/month=11/day=26/hour=10/a.jsonl.gz",
                          "events/year=2026/month=11/day=27/hour=00/b.jsonl.gz"])

    assert (totals["lines"], totals["accepted"], totals["anonymous"], totals["malformed"]) == (8, 4, 1, 3)
    assert (totals["interactions"], totals["duplicates"], totals["users"], totals["users_with_two"]) == (3, 1, 2, 1)
    by_item = {r["ITEM_ID"]: r for r in rows(s3, "prepared/run-1/interactions/")}
    assert by_item["post-1"] == {"USER_ID": "u-1", "ITEM_ID": "post-1", "TIMESTAMP": "1764150000",
                                 "EVENT_TYPE": "click", "RECOMMENDATION_ID": "rid-1", "IMPRESSION": "post-1|post-2"}
    assert by_item["post-4"]["RECOMMENDATION_ID"] == "" and by_item["post-4"]["EVENT_TYPE"] == "read"
    rejects = s3.list_objects_v2(Bucket=BUCKET, Prefix="prepared/run-1/rejects/")["Contents"]
    body = s3.get_object(Bucket=BUCKET, Key=rejects[0]["Key"])["Body"].read().decode().splitlines()
    assert len(body) == 3 and json.loads(body[0])["line"].startswith("{broken json")


def test_popular_items_and_the_items_csv_are_published(s3: Any) -> None:
    firehose_object(s3, "events/a.jsonl.gz", [line(click(i, user=f"u-{i}", itemId="hit")) for i in range(5)]
                    + [line(click(9, user="u-9", itemId="rare"))])
    s3.put_object(Bucket=BUCKET, Key="items/by-id/hit.json",
                  Body=json.dumps({"itemId": "hit", "creationTimestamp": 1764000000, "category": "news",
                                   "tags": ["a", "b"], "title": "Rain, again", "url": "https://blog.example/hit"}))
    s3.put_object(Bucket=BUCKET, Key="items/by-id/bare.json",
                  Body=json.dumps({"itemId": "bare", "creationTimestamp": 1764000001}))

    totals = prepare(s3, ["events/a.jsonl.gz"])

    popular = json.loads(s3.get_object(Bucket=BUCKET, Key="published/popular-items.json")["Body"].read())
    assert [i["itemId"] for i in popular["items"]] == ["hit", "rare"]
    items_csv = s3.get_object(Bucket=BUCKET, Key="prepared/run-1/items/items.csv")["Body"].read().decode()
    assert items_csv.splitlines() == ["ITEM_ID,CREATION_TIMESTAMP,CATEGORY,TAGS,TITLE,URL",
                                      "bare,1764000001,,,,",
                                      'hit,1764000000,news,a|b,"Rain, again",https://blog.example/hit']
    assert totals["items"] == 2


def test_the_items_csv_has_the_items_schemas_columns_in_its_order() -> None:
    from components.training_definition import INTERACTIONS_SCHEMA, ITEMS_SCHEMA

    assert [f["name"] for f in ITEMS_SCHEMA["fields"]] == ITEMS_HEADER
    assert [f["name"] for f in INTERACTIONS_SCHEMA["fields"]] == INTERACTIONS_HEADER


def test_a_title_longer_than_personalizes_textual_limit_is_cut() -> None:
    row = item_row({"itemId": "long", "creationTimestamp": 1764000000, "title": "x" * 25_000})

    assert len(row[4]) == 20_000


# --- bulk history and real-time events: one interaction, never two ------------------------------------------------

def _put_events_twin(event: dict[str, Any]) -> list[str]:
    """What Personalize records from the PutEvents call the event processor makes for ``event``, as a CSV row."""
    decoded = decode_record(base64.b64encode(line(event).encode()).decode(), TYPES)
    entry = put_events_event(decoded)
    sent_at = entry["sentAt"].timestamp()  # what botocore puts on the wire, milliseconds included if any
    return [event["userId"], entry["itemId"], str(int(sent_at)) if sent_at.is_integer() else str(sent_at),
            entry["eventType"],
            entry.get("recommendationId", ""), "|".join(entry.get("impression", []))]


@pytest.mark.parametrize("extra", [
    {},
    {"recommendationId": "rid-7", "impression": ["post-3", "post-1", "post-2"]},
    {"properties": {"section": "sport"}},  # client properties are not interaction columns: nothing to differ on
], ids=["plain", "recommended", "with-properties"])
def test_a_bulk_row_is_the_exact_twin_of_what_put_events_recorded(s3: Any, extra: dict[str, Any]) -> None:
    # GIVEN an event at a time with milliseconds, already delivered in real time through PutEvents
    event = click(7, user="u-7", **extra)
    event["timestamp"] = 1_764_150_123_987
    firehose_object(s3, "events/a.jsonl.gz", [line(event)])

    # WHEN training prepares the bulk import that also holds it
    prepare(s3, ["events/a.jsonl.gz"])

    # THEN the row carries exactly PutEvents' values (whole seconds both ways), so Personalize keeps one of the two
    [row] = rows(s3, "prepared/run-1/interactions/")
    assert list(row.values()) == _put_events_twin(event)
    assert row["TIMESTAMP"] == "1764150123"


def test_a_twin_differs_if_either_side_kept_milliseconds() -> None:
    # the property the rule depends on: a millisecond-precision sentAt would be a second, different interaction
    event = click(8, user="u-8")
    event["timestamp"] = 1_764_150_123_987
    entry = put_events_event(decode_record(base64.b64encode(line(event).encode()).decode(), TYPES))

    assert entry["sentAt"].microsecond == 0
    assert entry["sentAt"].timestamp() != event["timestamp"] / 1000


def test_anonymous_events_reach_personalize_only_in_real_time() -> None:
    anonymous = parse_event(click(9, user=None), TYPES)

    with pytest.raises(ValueError, match="anonymous events are not imported in bulk"):
        interaction_row(anonymous)


@pytest.mark.parametrize(("interactions", "users", "sufficient"), [(6, 2, True), (7, 1, False), (1, 3, False)])
def test_the_sufficiency_verdict_uses_both_thresholds(s3: Any, interactions: int, users: int,
                                                      sufficient: bool) -> None:
    firehose_object(s3, "events/a.jsonl.gz", [line(click(i, user="u-1" if i < 4 else "u-2")) for i in range(6)])

    totals = prepare(s3, ["events/a.jsonl.gz"], interactions=interactions, users=users)

    assert totals["sufficient"] is sufficient


def test_every_copy_of_an_event_lands_in_one_shard_so_duplicates_across_batches_go(s3: Any) -> None:
    events = [click(i, user=f"u-{i % 7}") for i in range(40)]
    firehose_object(s3, "events/a.jsonl.gz", [line(e) for e in events])
    firehose_object(s3, "events/b.jsonl.gz", [line(e) for e in events[:25]])  # redelivered in another object

    maps = [vars(map_objects(s3, BUCKET, [key], "run-1", 3, TYPES)) for key in
            ("events/a.jsonl.gz", "events/b.jsonl.gz")]
    reduced = [vars(reduce_shard(s3, BUCKET, "run-1", k)) for k in range(3)]

    assert sum(m["accepted"] for m in maps) == 65
    assert sum(r["interactions"] for r in reduced) == 40 and sum(r["duplicates"] for r in reduced) == 25
    assert sorted(r["ITEM_ID"] for r in rows(s3, "prepared/run-1/interactions/")) == sorted(
        e["itemId"] for e in events)


class FileS3:
    """S3 reads and writes backed by local files, so that the traced memory is the step's own, not moto's store."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        return {"Body": (self.root / Key).open("rb")}

    def upload_file(self, path: str, bucket: str, key: str) -> None:
        (self.root / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, self.root / key)


def peak_memory_of_map(tmp_path: Path, events: int) -> tuple[int, int]:
    """Peak traced memory of the map step over one object of ``events`` events, and the object's JSON size."""
    raw = tmp_path / f"events/{events}.jsonl.gz"
    raw.parent.mkdir(exist_ok=True)
    size = 0
    with gzip.open(raw, "wt", encoding="utf-8") as out:
        for i in range(events):
            text = line(click(i, user=f"u-{i % 500}", properties={"section": "x" * 40})) + "\n"
            size += len(text)
            out.write(text)
    tracemalloc.start()
    counts = map_objects(FileS3(tmp_path), BUCKET, [f"events/{events}.jsonl.gz"], f"run-{events}", 8, TYPES)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert counts.accepted == events
    return peak, size


def test_memory_stays_bounded_on_a_large_input(tmp_path: Path) -> None:
    peak_memory_of_map(tmp_path, 500)  # warm-up: the schema validator is compiled once per process
    small_peak, _ = peak_memory_of_map(tmp_path, 4_000)
    large_peak, large_size = peak_memory_of_map(tmp_path, 16_000)

    # Four times the input (4.3 MB of JSON lines) does not grow the peak: lines are streamed, rows go to files.
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)
    assert large_peak < large_size / 3, (large_peak, large_size)


def test_an_unknown_step_is_refused(monkeypatch: pytest.MonkeyPatch, s3: Any) -> None:
    import importlib

    for name, value in function_environment("training_steps").items():
        monkeypatch.setenv(name, value)
    module = importlib.import_module("training_steps")
    module.config.cache_clear()

    with pytest.raises(ValueError, match="unknown step 'train'"):
        module.handler({"step": "train"}, FakeLambdaContext())


@pytest.mark.parametrize(("new", "current", "tolerance", "promote"), [
    (0.30, None, 0.0, True),
    (0.30, 0.29, 0.0, True),
    (0.28, 0.29, 0.02, True),
    (0.26, 0.29, 0.02, False),
])
def test_the_metric_gate_promotes_unless_worse_beyond_tolerance(new: float, current: float | None,
                                                                tolerance: float, promote: bool) -> None:
    from common.training_data import metric_gate

    decision = metric_gate("ndcg", tolerance, {"ndcg": new}, None if current is None else {"ndcg": current})

    assert decision["promote"] is promote


def test_the_metric_gate_needs_the_metric_on_the_new_version() -> None:
    from common.training_data import metric_gate

    with pytest.raises(ValueError, match="has no metric 'ndcg'"):
        metric_gate("ndcg", 0.0, {"precision_at_25": 0.1}, None)
