"""Send realistic sample clickstream through a stack's collection API until training has enough data.

    python -m tools.traffic --stack dev --readers 200 --days 14 [--rate 5] [--dry-run events.jsonl]

Readers (a share signed in, the rest anonymous) visit over ``--days`` days in sessions; each has favourite
categories, views posts, reads some to the end (``scrollDepth``), clicks recommended ones (``recommendationId``,
``impression``) and now and then shares. Traffic is generated until the stack's training minimums are met
(``trainingMinInteractions`` interactions of signed-in readers and ``trainingMinUsersWithTwoInteractions`` readers
with two or more), then sent in batches (``POST <collectUrl>`` with ``x-api-key``), at most ``--rate`` requests a
second. Refused events are resent by their ``index`` in the reply, 429/503 after ``Retry-After``, other 5xx with
backoff. The URL and key come from the stack's outputs (``collectUrl``, ``collectApiKeyId``) unless
``--collect-url``/``--api-key`` are given. ``--dry-run FILE`` writes each batch as one JSON line instead.
Exit status: 0 sent, 1 the API refused (or retries ran out), 2 bad arguments or no endpoint.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

CATEGORIES = ("engineering", "culture", "politics", "science", "sport", "travel", "food", "business")
POSTS_PER_CATEGORY = 40
MAX_BATCH = 500  # the collection API takes 1-500 events a call
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Reader:
    session_prefix: str
    user_id: str | None  # None: anonymous (only the session identifies them)
    favourites: tuple[str, ...]
    sessions_per_day: float


@dataclass
class Generator:
    """Deterministic (seeded) reader behaviour over a time window ending at ``now_ms``."""

    readers: int
    days: int
    event_types: Sequence[str]
    now_ms: int
    seed: int = 7
    signed_in_share: float = 0.6
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.population = [self._reader(i) for i in range(self.readers)]

    def _reader(self, i: int) -> Reader:
        signed_in = self.rng.random() < self.signed_in_share
        return Reader(f"s{i:05d}", f"reader-{i:05d}" if signed_in else None,
                      tuple(self.rng.sample(CATEGORIES, 2)), self.rng.uniform(0.3, 2.0))

    def _post(self, reader: Reader) -> tuple[str, str]:
        category = self.rng.choice(reader.favourites) if self.rng.random() < 0.75 else self.rng.choice(CATEGORIES)
        rank = min(int(self.rng.paretovariate(1.2)), POSTS_PER_CATEGORY)  # a few posts are read by many
        return category, f"post-{category}-{rank:03d}"

    def _event(self, reader: Reader, session: str, event_type: str, item: str, category: str, at_ms: int,
               **extra: Any) -> dict[str, Any]:
        event: dict[str, Any] = {"eventId": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                                 "eventType": event_type, "sessionId": session, "itemId": item,
                                 "timestamp": at_ms, "properties": {"category": category, **extra.pop("props", {})}}
        if reader.user_id:
            event["userId"] = reader.user_id
        event.update(extra)
        return event

    def session(self, reader: Reader, start_ms: int) -> list[dict[str, Any]]:
        """One visit: a few posts viewed; deep reads become "read", clicks on recommendations carry their id."""
        session = f"{reader.session_prefix}-{start_ms:x}"
        events, at = [], start_ms
        for _ in range(self.rng.randint(1, 6)):
            category, item = self._post(reader)
            depth = round(self.rng.betavariate(2, 2), 2)
            at += self.rng.randint(5_000, 180_000)
            if self.rng.random() < 0.3:
                shown = sorted({self._post(reader)[1] for _ in range(5)} | {item})
                events.append(self._event(reader, session, "click", item, category, at,
                                          recommendationId=f"rid-{self.rng.getrandbits(48):012x}",
                                          impression=shown))
            events.append(self._event(reader, session, "view", item, category, at + 500,
                                      props={"scrollDepth": depth}))
            if depth >= 0.7:
                events.append(self._event(reader, session, "read", item, category, at + 60_000,
                                          props={"scrollDepth": depth}))
            if depth >= 0.9 and self.rng.random() < 0.2:
                events.append(self._event(reader, session, "share", item, category, at + 70_000))
        return [e for e in events if e["eventType"] in self.event_types]

    def day(self, day: int) -> list[dict[str, Any]]:
        """Every reader's visits on day ``day`` of the window (past the window, its days again: more visits)."""
        day_start = self.now_ms - (self.days - day % self.days) * DAY_MS
        events = []
        for reader in self.population:
            visits = int(reader.sessions_per_day) + (self.rng.random() < reader.sessions_per_day % 1)
            for _ in range(visits):
                start = min(day_start + self.rng.randint(0, DAY_MS - 1), self.now_ms - 3_600_000)
                events += self.session(reader, start)
        return events


@dataclass
class Minimums:
    interactions: int
    users_with_two: int
    per_user: Counter[str] = field(default_factory=Counter)
    anonymous: int = 0

    def add(self, event: dict[str, Any]) -> None:
        if "userId" in event:
            self.per_user[event["userId"]] += 1
        else:
            self.anonymous += 1

    @property
    def counted(self) -> int:
        return sum(self.per_user.values())

    @property
    def users(self) -> int:
        return sum(1 for n in self.per_user.values() if n >= 2)

    def met(self) -> bool:
        return self.counted >= self.interactions and self.users >= self.users_with_two


def plan_traffic(generator: Generator, minimums: Minimums, max_days: int = 3650) -> list[dict[str, Any]]:
    """The window's traffic, extended (more visits on the same days) until the training minimums are met."""
    events: list[dict[str, Any]] = []
    for day in range(max_days):
        if day >= generator.days and minimums.met():
            break
        for event in generator.day(day):
            events.append(event)
            minimums.add(event)
    else:
        raise ValueError("the readers never reach the training minimums: add readers")
    return sorted(events, key=lambda e: e["timestamp"])


def batches(events: Sequence[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(events), size):
        yield list(events[start:start + size])


class CollectError(Exception):
    """The API refused in a way resending cannot fix, or retries ran out."""


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    retry_after: float | None


Post = Callable[[str, str, dict[str, Any]], Reply]


def http_post(url: str, api_key: str, body: dict[str, Any], timeout: float = 30.0) -> Reply:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",  # noqa: S310 - https/http
                                     headers={"Content-Type": "application/json", "x-api-key": api_key})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return Reply(response.status, _json(response.read()), _retry_after(response.headers.get("Retry-After")))
    except urllib.error.HTTPError as error:
        return Reply(error.code, _json(error.read()), _retry_after(error.headers.get("Retry-After")))


def _json(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw or b"{}")
    except ValueError:
        return {"message": raw[:200].decode(errors="replace")}
    return parsed if isinstance(parsed, dict) else {"message": str(parsed)}


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@dataclass
class RateLimiter:
    """At most ``rate`` calls a second: waits (through ``sleep``) until the next call is due."""

    rate: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _next: float | None = None

    def wait(self) -> None:
        now = self.clock()
        if self._next is not None and now < self._next:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + 1.0 / self.rate


@dataclass
class Sender:
    url: str
    api_key: str
    limiter: RateLimiter
    post: Post = http_post
    max_attempts: int = 8
    out: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))
    sent: int = 0
    resent: int = 0
    calls: int = 0

    def send(self, batch: list[dict[str, Any]]) -> None:
        """Deliver every event of ``batch``; resend what the API refused by index."""
        pending = batch
        for attempt in range(1, self.max_attempts + 1):
            self.limiter.wait()
            self.calls += 1
            reply = self.post(self.url, self.api_key, {"events": pending})
            if reply.status == 200:
                failed = sorted({f["index"] for f in reply.body.get("failures", [])
                                 if isinstance(f, dict) and isinstance(f.get("index"), int)
                                 and 0 <= f["index"] < len(pending)})
                self.sent += len(pending) - len(failed)
                if not failed:
                    return
                self.resent += len(failed)
                pending = [pending[i] for i in failed]
                continue
            if reply.status in (400, 401, 403, 404, 413):
                raise CollectError(f"the API refused the batch with {reply.status}: "
                                   f"{reply.body.get('message', '')} {reply.body.get('errors', '')}".rstrip())
            # 429 and 503 (throttling) say when to come back; other 5xx: back off exponentially.
            backoff = reply.retry_after if reply.retry_after is not None else min(30.0, 0.5 * 2 ** (attempt - 1))
            if reply.status == 503 and reply.body.get("failures"):
                pending = [pending[f["index"]] for f in reply.body["failures"] if 0 <= f.get("index", -1)
                           < len(pending)] or pending
            self.resent += len(pending)
            self.limiter.sleep(backoff)
        raise CollectError(f"{len(pending)} event(s) still refused after {self.max_attempts} attempts")


def endpoint(stack: str) -> tuple[str, str]:
    """The collection URL and API key value of a deployed stack, from its outputs and API Gateway."""
    import boto3

    from tools.train import stack_output

    url = stack_output(stack, "collectUrl", instead="--collect-url/--api-key") or ""
    key_id = stack_output(stack, "collectApiKeyId", instead="--collect-url/--api-key") or ""
    host = urlparse(url).hostname or ""
    region = host.split(".")[2] if host.count(".") >= 3 else None  # <api>.execute-api.<region>.amazonaws.com
    key = boto3.client("apigateway", region_name=region).get_api_key(apiKey=key_id, includeValue=True)["value"]
    return url, str(key)


def stack_training(stack: str) -> tuple[tuple[str, ...], int, int]:
    """The stack's event types and training minimums (from its settings)."""
    from components.settings import load_settings_from_values
    from tools.synth import stack_config

    settings = load_settings_from_values(stack_config(stack), stack)
    return (settings.ingestion.event_types, settings.training.min_interactions,
            settings.training.min_users_with_two)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.traffic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--readers", type=int, default=200, help="distinct readers (default 200)")
    parser.add_argument("--days", type=int, default=14, help="days of history, ending now (default 14)")
    parser.add_argument("--signed-in-share", type=float, default=0.6, help="share of signed-in readers (0.6)")
    parser.add_argument("--batch-size", type=int, default=100, help=f"events a call, 1-{MAX_BATCH} (default 100)")
    parser.add_argument("--rate", type=float, default=5.0, help="calls a second at most (default 5)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--collect-url", help="instead of the stack output collectUrl")
    parser.add_argument("--api-key", help="instead of the value of the stack's collectApiKeyId")
    parser.add_argument("--dry-run", metavar="FILE", help="write the batches as JSON lines to FILE, send nothing")
    return parser


def main(argv: list[str] | None = None, *, post: Post = http_post, clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep, now_ms: int | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= MAX_BATCH:
        parser.error(f"--batch-size must be 1-{MAX_BATCH}")
    if args.readers < 1 or args.days < 1 or args.rate <= 0 or not 0 < args.signed_in_share <= 1:
        parser.error("--readers and --days must be at least 1, --rate above 0, --signed-in-share in (0, 1]")
    if bool(args.collect_url) != bool(args.api_key):
        parser.error("--collect-url and --api-key go together")
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        event_types, min_interactions, min_users = stack_training(args.stack)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if int(args.readers * args.signed_in_share) < min_users:
        print(f"error: {args.readers} readers with {args.signed_in_share:.0%} signed in cannot give {min_users} "
              f"signed-in readers with two interactions: raise --readers", file=sys.stderr)
        return 2
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    generator = Generator(args.readers, args.days, event_types, now, args.seed, args.signed_in_share)
    minimums = Minimums(min_interactions, min_users)
    events = plan_traffic(generator, minimums)
    log(f"{len(events)} events: {minimums.counted} of {len(minimums.per_user)} signed-in readers ({minimums.users} "
        f"with two or more), {minimums.anonymous} anonymous; training needs {min_interactions} and {min_users}")
    if args.dry_run:
        Path(args.dry_run).parent.mkdir(parents=True, exist_ok=True)
        with Path(args.dry_run).open("w", encoding="utf-8") as file:
            for batch in batches(events, args.batch_size):
                file.write(json.dumps({"events": batch}) + "\n")
        log(f"dry run: wrote {len(events)} events in {-(-len(events) // args.batch_size)} batches to {args.dry_run}")
        return 0
    try:
        url, key = (args.collect_url, args.api_key) if args.collect_url else endpoint(args.stack)
    except Exception as error:  # noqa: BLE001 - no Pulumi CLI, no output, no credentials: one line
        print(f"error: cannot find the collection API of stack {args.stack}: {error}", file=sys.stderr)
        return 2
    sender = Sender(url, key, RateLimiter(args.rate, clock, sleep), post, out=log)
    total_batches = -(-len(events) // args.batch_size)
    try:
        for number, batch in enumerate(batches(events, args.batch_size), start=1):
            sender.send(batch)
            if number == total_batches or number % 10 == 0:
                log(f"sent {sender.sent}/{len(events)} events ({sender.sent * 100 // len(events)} %) in "
                    f"{sender.calls} calls, {sender.resent} resent")
    except (CollectError, OSError) as error:
        print(f"error: {error} ({sender.sent} of {len(events)} events sent)", file=sys.stderr)
        return 1
    log("done: start a training with `python -m tools.train --stack "
        f"{args.stack} --follow` (Firehose delivers to S3 within its buffer time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
