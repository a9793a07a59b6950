"""The read surfaces (for you, related, trending, ranking): Personalize within a deadline, else a fallback list.

Every external call of a request runs under one ``Deadline``: Personalize gets what is left minus a reserve for the
fallback and the metadata lookups, which themselves give up when the deadline passes (an item then goes out bare).
So a hanging dependency costs the reader the deadline, never the SDK's timeouts times its retries.

Readers: ``reader`` is the Personalize user id: the signed-in user's id, else the session id (an anonymous reader's
events carry only the session id, and Personalize answers a session id given as the user id from those events).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from common.catalog import BY_ID_PREFIX, BY_TIME_PREFIX, newest_from_keys
from common.contract import (
    ANONYMOUS_ID_PREFIX,
    FRESH_FILTER,
    FRESH_SINCE_VALUE,
    MAX_RANK_CANDIDATES,
    ItemColumn,
    Surface,
)
from common.recommend import (
    CONTEXT_KEY,
    DEFAULT_RESULTS,
    ID_PATTERN,
    MAX_CONTEXT,
    MAX_RESULTS,
    BadRequestError,
    Fallback,
)
from common.ssm import CachedParameter

logger = logging.getLogger(__name__)

MAX_CANDIDATES = MAX_RANK_CANDIDATES
# Of the deadline, what Personalize may not use: the fallback and the metadata lookups need it.
RESERVE_SHARE = 0.25
ANONYMOUS_TRENDING_READER = "anonymous"  # Trending-Now needs a userId; without a reader any stable id will do
_CATALOG_ENTRIES = 10_000
# What a reply shows of an item, asked as ``metadataColumns`` of campaigns with enableMetadataWithRecommendations.
METADATA_COLUMNS = (ItemColumn.TITLE, ItemColumn.URL, ItemColumn.CATEGORY, ItemColumn.CREATION_TIMESTAMP)
T = TypeVar("T")


def runtime_config(deadline_seconds: float) -> Config:
    """Personalize Runtime's client: one attempt, which may not outlive the budget. No retry: the standard mode's
    backoff (up to a second for throttling) or a second timeout would land after the deadline, and a retry nobody
    waits for would only hold a worker and bill a request."""
    budget = deadline_seconds * (1 - RESERVE_SHARE)
    return Config(connect_timeout=budget, read_timeout=budget,
                  retries={"total_max_attempts": 1, "mode": "standard"})


class Deadline:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock, self._seconds = clock, seconds
        self._end = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    def for_personalize(self) -> float:
        return max(0.0, self.remaining() - self._seconds * RESERVE_SHARE)


def bounded(executor: Executor, call: Callable[[], T], timeout: float) -> T:
    """``call()``'s result, or ``TimeoutError`` after ``timeout`` seconds (the call finishes in the background, within
    its own client timeouts)."""
    return executor.submit(call).result(timeout=timeout)


@dataclass(frozen=True)
class SurfaceRequest:
    surface: str
    reader: str | None
    item_id: str | None = None
    candidates: tuple[str, ...] = ()
    num_results: int = DEFAULT_RESULTS
    filter_name: str | None = None
    context: Mapping[str, str] = field(default_factory=dict)


# --- parsing --------------------------------------------------------------------------------------------------------

def _id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise BadRequestError(f"{name} must be 1-128 printable ASCII characters without spaces, quotes or backslashes")
    return value


def _reader(user_id: Any, session_id: Any) -> str | None:
    """The signed-in user's id, else the session's: see the module's docstring."""
    if user_id is not None:
        _id(user_id, "userId")
    if session_id is not None:
        _id(session_id, "sessionId")
    return user_id if user_id is not None else session_id  # type: ignore[no-any-return]


def personalize_user(reader_id: str) -> str:
    """Personalize's user id for a reader's path id: an anonymous reader's ``anon-<session id>`` is the session id
    (what the reader's events carry as ``sessionId``, with no ``userId``); any other id is the signed-in user's."""
    session = reader_id.removeprefix(ANONYMOUS_ID_PREFIX)
    return session if session and session != reader_id else reader_id


def _num_results(raw: Any) -> int:
    text = str(raw)
    if not text.isdigit() or not 1 <= int(text) <= MAX_RESULTS:
        raise BadRequestError(f"numResults must be an integer from 1 to {MAX_RESULTS}, got {raw!r}")
    return int(text)


def _filter(name: Any, filter_names: Sequence[str]) -> str | None:
    if name is not None and name not in filter_names:
        raise BadRequestError(f"unknown filter {name!r}; filters: {', '.join(filter_names) or 'none configured'}")
    return name  # type: ignore[no-any-return]


def _context(entries: Iterable[Any]) -> dict[str, str]:
    context: dict[str, str] = {}
    for entry in entries:
        key, sep, value = str(entry).partition(":")
        if not sep or not CONTEXT_KEY.match(key) or not 1 <= len(value) <= 1000:
            raise BadRequestError(f"context entries must be KEY:value (KEY of letters, digits, _), got {entry!r}")
        context[key] = value
    if len(context) > MAX_CONTEXT:
        raise BadRequestError(f"at most {MAX_CONTEXT} context entries")
    return context


def _query(event: Mapping[str, Any], allowed: set[str]) -> dict[str, str]:
    query: dict[str, str] = event.get("queryStringParameters") or {}
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise BadRequestError(f"unknown query parameters: {', '.join(unknown)}")
    return query


def parse_related(event: Mapping[str, Any], filter_names: Sequence[str]) -> SurfaceRequest:
    """``GET /items/{itemId}/related?numResults&filter&userId|sessionId&context``."""
    item_id = _id((event.get("pathParameters") or {}).get("itemId"), "itemId")
    query = _query(event, {"numResults", "filter", "userId", "sessionId", "context"})
    return SurfaceRequest(Surface.RELATED, _reader(query.get("userId"), query.get("sessionId")), item_id=item_id,
                          num_results=_num_results(query.get("numResults", DEFAULT_RESULTS)),
                          filter_name=_filter(query.get("filter"), filter_names),
                          context=_context((event.get("multiValueQueryStringParameters") or {}).get("context", [])))


def parse_trending(event: Mapping[str, Any]) -> SurfaceRequest:
    """``GET /trending?numResults&userId|sessionId``."""
    query = _query(event, {"numResults", "userId", "sessionId"})
    return SurfaceRequest(Surface.TRENDING, _reader(query.get("userId"), query.get("sessionId")),
                          num_results=_num_results(query.get("numResults", DEFAULT_RESULTS)))


def parse_rank(event: Mapping[str, Any], filter_names: Sequence[str]) -> SurfaceRequest:
    """``POST /rank`` with ``{"userId" | "sessionId", "itemIds": [...], "filter"?, "context"?: {KEY: value}}``."""
    try:
        body = json.loads(event.get("body") or "")
    except (json.JSONDecodeError, TypeError):
        raise BadRequestError("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    unknown = sorted(set(body) - {"userId", "sessionId", "itemIds", "filter", "context"})
    if unknown:
        raise BadRequestError(f"unknown body fields: {', '.join(unknown)}")
    reader = _reader(body.get("userId"), body.get("sessionId"))
    if reader is None:
        raise BadRequestError("userId or sessionId is required")
    candidates = body.get("itemIds")
    if not isinstance(candidates, list) or not 1 <= len(candidates) <= MAX_CANDIDATES:
        raise BadRequestError(f"itemIds must be a list of 1 to {MAX_CANDIDATES} item ids")
    ids = tuple(_id(i, "each itemId") for i in candidates)
    if len(set(ids)) != len(ids):
        raise BadRequestError("each itemId may appear once in itemIds")
    context = body.get("context") or {}
    if not isinstance(context, dict):
        raise BadRequestError("context must be an object of KEY: value")
    return SurfaceRequest(Surface.RANKING, reader, candidates=ids, num_results=len(ids),
                          filter_name=_filter(body.get("filter"), filter_names),
                          context=_context(f"{k}:{v}" for k, v in context.items()))


# --- what the surfaces read -----------------------------------------------------------------------------------------

class Campaigns:
    """Each surface's campaign from the ``campaign-arns`` JSON object; for you also from the older ``campaign-arn``."""

    def __init__(self, arns: CachedParameter, for_you: CachedParameter) -> None:
        self._arns, self._for_you = arns, for_you

    def arn(self, surface: str) -> str | None:
        raw = self._arns.get()
        try:
            arns = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            logger.error("the campaign ARNs parameter is not a JSON object")
            arns = {}
        arn = arns.get(surface) if isinstance(arns, dict) else None
        if isinstance(arn, str) and arn:
            return arn
        return self._for_you.get() if surface == Surface.FOR_YOU else None

    def invalidate(self) -> None:
        self._arns.invalidate()
        self._for_you.invalidate()


def item_fields(document: Mapping[str, Any]) -> dict[str, Any]:
    """The reply's fields of an item, from the items store's document or Personalize's metadata (column names in any
    case, ``CREATION_TIMESTAMP`` or ``creationTimestamp``)."""
    normal = {str(k).replace("_", "").lower(): v for k, v in document.items()}
    fields: dict[str, Any] = {}
    for name in ("title", "url", "category"):
        value = normal.get(name)
        if isinstance(value, str) and value:
            fields[name] = value.split("|")[0] if name == "category" else value
    created = normal.get("creationtimestamp")
    if isinstance(created, str) and created.isdigit():
        created = int(created)
    if isinstance(created, int | float) and not isinstance(created, bool):
        fields["creationTimestamp"] = int(created)
    return fields


class Catalog:
    """Items store documents (``items/by-id/``) and the newest items, cached; lookups give up at their timeout."""

    def __init__(self, s3_client: Any, bucket: str, ttl_seconds: float, executor: Executor,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._s3, self._bucket, self._ttl, self._executor, self._clock = (s3_client, bucket, ttl_seconds, executor,
                                                                          clock)
        self._lock = threading.Lock()
        self._documents: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._newest: tuple[float, list[str]] = (float("-inf"), [])

    def documents(self, item_ids: Sequence[str], timeout: float) -> dict[str, dict[str, Any]]:
        now = self._clock()
        with self._lock:
            cached = {i: self._documents[i] for i in item_ids if i in self._documents}
        missing = [i for i in dict.fromkeys(item_ids) if i not in cached or cached[i][0] <= now]
        fetched: dict[str, dict[str, Any] | None] = {}
        if missing and timeout > 0:
            futures = {self._executor.submit(self._fetch, i): i for i in missing}
            done, _ = wait(futures, timeout=timeout)
            fetched = {futures[f]: f.result() for f in done}
            with self._lock:
                if len(self._documents) > _CATALOG_ENTRIES:
                    self._documents.clear()
                for item_id, document in fetched.items():
                    self._documents[item_id] = (now + self._ttl, document)
        known = {i: doc for i, (_, doc) in cached.items()} | fetched
        return {i: doc for i, doc in known.items() if doc is not None}

    def newest(self, timeout: float) -> list[str]:
        expires, ids = self._newest
        if self._clock() < expires:
            return ids
        try:
            ids = bounded(self._executor, self._list_newest, timeout)
        except TimeoutError:
            return ids
        self._newest = (self._clock() + self._ttl, ids)
        return ids

    def _list_newest(self) -> list[str]:
        try:
            listing = self._s3.list_objects_v2(Bucket=self._bucket, Prefix=BY_TIME_PREFIX, MaxKeys=MAX_RESULTS * 2)
        except (ClientError, BotoCoreError) as error:
            logger.warning("cannot list the newest items: %s", error)
            return []
        return newest_from_keys([o["Key"] for o in listing.get("Contents", [])], MAX_RESULTS * 2)

    def _fetch(self, item_id: str) -> dict[str, Any] | None:
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=f"{BY_ID_PREFIX}{quote(item_id, safe='')}.json")
            document = json.loads(body["Body"].read())
        except (ClientError, BotoCoreError, ValueError) as error:
            logger.debug("no store document for %s: %s", item_id, error)
            return None
        return document if isinstance(document, dict) else None


@dataclass(frozen=True)
class FreshPosts:
    """A share of each GetRecommendations list promoted from the posts published in the last ``hours``."""

    percent: int
    hours: int

    def promotion(self, filter_arn: str, now: float) -> dict[str, Any]:
        return {"name": FRESH_FILTER, "percentPromotedItems": self.percent, "filterArn": filter_arn,
                "filterValues": {FRESH_SINCE_VALUE: self.since(now)}}

    def since(self, now: float) -> str:
        return str(int(now - self.hours * 3600))


class PersonalizeUnavailableError(Exception):
    """Personalize cannot answer this request now; the message is the reply's ``reason``."""


# --- the surfaces ---------------------------------------------------------------------------------------------------

class Surfaces:
    def __init__(self, *, runtime_client: Any, campaigns: Campaigns, filter_arns: CachedParameter,
                 popular: Fallback, catalog: Catalog, executor: Executor, deadline_seconds: float,
                 fresh: FreshPosts | None, metadata_surfaces: Sequence[str],
                 monotonic: Callable[[], float] = time.monotonic, clock: Callable[[], float] = time.time) -> None:
        self._runtime, self._campaigns, self._filters = runtime_client, campaigns, filter_arns
        self._popular, self._catalog, self._executor = popular, catalog, executor
        self._deadline_seconds, self._fresh, self._metadata = deadline_seconds, fresh, set(metadata_surfaces)
        self._monotonic, self._clock = monotonic, clock

    def serve(self, request: SurfaceRequest) -> dict[str, Any]:
        """The reply body: ``items`` (id, score when Personalize ranked it, metadata), ``recommendationId``,
        ``source`` ("personalize" or "fallback", with the ``reason``)."""
        deadline = Deadline(self._deadline_seconds, self._monotonic)
        try:
            items, recommendation_id = self._personalize(request, deadline)
            source: dict[str, Any] = {"recommendationId": recommendation_id, "source": "personalize"}
        except PersonalizeUnavailableError as error:
            logger.info("serving the %s fallback list: %s", request.surface, error)
            items = [{"itemId": i} for i in self._fallback(request, deadline)]
            source = {"recommendationId": None, "source": "fallback", "reason": str(error)}
        return {**self._subject(request), "items": self._with_metadata(items, deadline), **source}

    @staticmethod
    def _subject(request: SurfaceRequest) -> dict[str, Any]:
        subject: dict[str, Any] = {}
        if request.item_id is not None:
            subject["itemId"] = request.item_id
        if request.reader is not None:
            subject["userId"] = request.reader
        return subject

    def _personalize(self, request: SurfaceRequest, deadline: Deadline) -> tuple[list[dict[str, Any]], str | None]:
        call = self._call(request)
        ranking = request.surface == Surface.RANKING
        operation = self._runtime.get_personalized_ranking if ranking else self._runtime.get_recommendations
        try:
            response = bounded(self._executor, lambda: operation(**call), deadline.for_personalize())
        except TimeoutError:
            raise PersonalizeUnavailableError("personalize deadline exceeded") from None
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "error")
            if code == "ResourceNotFoundException":
                self._campaigns.invalidate()
                self._filters.invalidate()
            raise PersonalizeUnavailableError(f"personalize {code}") from None
        except BotoCoreError as error:  # connection failures, the SDK's own timeouts
            raise PersonalizeUnavailableError(f"personalize {type(error).__name__}") from None
        listed = response.get("personalizedRanking" if ranking else "itemList", [])
        items = [self._item(i) for i in listed]
        if not items:
            raise PersonalizeUnavailableError(f"no recommendations for this {'user' if request.reader else 'item'}")
        return items, response.get("recommendationId")

    def _call(self, request: SurfaceRequest) -> dict[str, Any]:
        try:
            campaign = self._campaigns.arn(request.surface)
            filters = self._filter_arns()
        except (ClientError, BotoCoreError) as error:
            raise PersonalizeUnavailableError(f"configuration unavailable: {type(error).__name__}") from None
        if campaign is None:
            raise PersonalizeUnavailableError("no campaign yet")
        call: dict[str, Any] = {"campaignArn": campaign}
        if request.surface == Surface.RANKING:
            call["inputList"] = list(request.candidates)
        else:
            call["numResults"] = request.num_results
        if request.item_id is not None:
            call["itemId"] = request.item_id
        reader = request.reader or (ANONYMOUS_TRENDING_READER if request.surface == Surface.TRENDING else None)
        if reader is not None:
            call["userId"] = reader
        now = self._clock()
        if request.filter_name:
            if request.filter_name not in filters:
                raise PersonalizeUnavailableError(f"filter {request.filter_name} not published yet")
            call["filterArn"] = filters[request.filter_name]
            if request.filter_name == FRESH_FILTER and self._fresh:
                call["filterValues"] = {FRESH_SINCE_VALUE: self._fresh.since(now)}
        if request.context:
            call["context"] = dict(request.context)
        if self._fresh and request.surface != Surface.RANKING and FRESH_FILTER in filters:
            call["promotions"] = [self._fresh.promotion(filters[FRESH_FILTER], now)]
        if request.surface in self._metadata:
            call["metadataColumns"] = {"ITEMS": list(METADATA_COLUMNS)}
        return call

    def _filter_arns(self) -> dict[str, str]:
        raw = self._filters.get()
        try:
            arns = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            logger.error("the filter ARNs parameter is not a JSON object")
            return {}
        return {k: v for k, v in arns.items() if isinstance(v, str)} if isinstance(arns, dict) else {}

    @staticmethod
    def _item(predicted: Mapping[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"itemId": predicted["itemId"], "score": predicted.get("score")}
        item.update(item_fields(predicted.get("metadata") or {}))
        if predicted.get("promotionName"):
            item["promotion"] = predicted["promotionName"]
        return item

    def _fallback(self, request: SurfaceRequest, deadline: Deadline) -> list[str]:
        """for you, trending: popular, else newest; related: the same category's newest, then popular;
        ranking: the candidates in the order given."""
        if request.surface == Surface.RANKING:
            return list(request.candidates)
        ids: list[str] = []
        if request.surface == Surface.RELATED and request.item_id is not None:
            ids = self._same_category(request.item_id, request.num_results, deadline)
        if len(ids) < request.num_results:
            try:
                popular = bounded(self._executor, lambda: self._popular.items(MAX_RESULTS), deadline.remaining())
            except TimeoutError:
                popular = []
            ids += [i for i in popular if i not in ids and i != request.item_id]
        return ids[:request.num_results]

    def _same_category(self, item_id: str, limit: int, deadline: Deadline) -> list[str]:
        category = item_fields(self._catalog.documents([item_id], deadline.remaining()).get(item_id, {})).get(
            "category")
        if category is None:
            return []
        newest = [i for i in self._catalog.newest(deadline.remaining()) if i != item_id]
        documents = self._catalog.documents(newest, deadline.remaining())
        return [i for i in newest if item_fields(documents.get(i, {})).get("category") == category][:limit]

    def _with_metadata(self, items: list[dict[str, Any]], deadline: Deadline) -> list[dict[str, Any]]:
        """Items without a title (no metadata from Personalize) get their fields from the items store, if in time."""
        bare = [i["itemId"] for i in items if "title" not in i]
        documents = self._catalog.documents(bare, deadline.remaining()) if bare else {}
        return [{**item, **{k: v for k, v in item_fields(documents.get(item["itemId"], {})).items() if k not in item}}
                for item in items]
