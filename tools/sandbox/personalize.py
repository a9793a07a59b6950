"""A local Amazon Personalize stand-in for the sandbox: PutEvents, PutItems, GetRecommendations and
GetPersonalizedRanking over HTTP, one campaign per recommendation surface.

A development stand-in, not a model of Personalize's quality: it answers in the service's wire format, validates
every request with botocore's service models, and its recommendations react to events at once, so the whole reader
loop can run on one machine. It knows nothing of the recipes, training or scores of the real service.

Interface::

    stand_in = PersonalizeStandIn(region="eu-west-1", prefix="cp-dev-euw1",
                                  filters={"unread": 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("read")'},
                                  weights=Weights(), clock=time.time, events=FakePersonalize())
    stand_in.campaign_arn, stand_in.campaign_arns (surface → ARN; for-you's is campaign_arn),
    stand_in.filter_arns (name → ARN), stand_in.dataset_arn, stand_in.tracking_id
    stand_in.parameters() -> {"campaign-arn", "campaign-arns" (JSON object), "filter-arns" (JSON object),
                              "items-dataset-arn", "tracking-id"}
        # what training would publish under /<prefix>/personalize/<name> in SSM
    stand_in.calls() -> {"putEvents": [request...], "putItems": [request...],
                         "getRecommendations": [{"request", "response"}...]}
    stand_in.handle(method, path, body) -> (status, headers, body)     # the HTTP surface below, in-process
    stand_in.reset()
    with serve(stand_in) as url: ...          # or: server = LoopbackServer.for_app(stand_in); .url; .stop()
    python -m tools.sandbox.personalize [--port 0] [--region R] [--prefix P]
        # prints one JSON line {"url", "parameters"} once listening; stops on SIGINT/SIGTERM

HTTP (127.0.0.1 only); point ``AWS_ENDPOINT_URL_PERSONALIZE_EVENTS`` and ``AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME``
at the same URL:

- ``POST /events`` (PutEvents), ``POST /items`` (PutItems), ``POST /recommendations`` (GetRecommendations): routes
  taken from the botocore models; bodies validated against their input shapes (types, required members, lengths,
  ranges, patterns). Refusals are answered as the service does: status from the model, ``x-amzn-ErrorType``
  (``InvalidInputException`` 400, ``ResourceNotFoundException`` 404 for an unknown campaign, filter or dataset,
  ``SerializationException`` for a body that is not JSON), so boto3 raises the matching ``ClientError``. PutEvents
  goes through ``tools.fake_personalize.FakePersonalize`` (its latency, throttling and rejected-ids faults apply);
  an unknown ``trackingId`` and a ``properties`` value that is not a JSON object are refused.
- ``GET /_sandbox/health`` → ``{"status": "ok"}``; ``GET /_sandbox/calls`` → ``calls()``;
  ``GET /_sandbox/parameters`` → ``parameters()``; ``POST /_sandbox/reset`` forgets every event, item and call.

How recommendations are made (``GetRecommendations`` with ``userId``; the id may also be a session id, as the
service allows for anonymous readers): the reader's profile is every event with that user id or session id, and of
the sessions the user id appeared in. Its most recent distinct items (up to ``Weights.recent_items``, the newest
weighing most, each by its strongest event type) pull in

- co-visitation: items seen in other readers' sessions together with them;
- category affinity: items of the same category (from PutItems' ``properties``, else from events' properties);

on top of recency-weighted popularity (event-type weights, halving every ``Weights.half_life_seconds``) and a small
freshness prior from ``CREATION_TIMESTAMP``, so items known from PutItems are candidates before anyone read them and
an unknown user gets the popular and fresh items. Each component is scaled to [0, 1], the weighted sum is
normalised so that all candidates' scores add up to 1 (as the service's do), and ties go to the newer item.
Exclusion happens only through filters (as in Personalize): the ``unread`` filter's expression drops what the reader
has ``read``. Supported filter expressions: ``EXCLUDE|INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (...)``,
``EXCLUDE|INCLUDE ItemID WHERE Items.CATEGORY IN (...)`` (quoted values or ``$PARAMETER`` placeholders taken from
``filterValues``) and ``EXCLUDE|INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP >|>=|<|<= <number>|$PARAMETER``;
anything else is refused when the stand-in is built. By campaign: for you as above; related (``itemId`` required,
with a ``userId`` the reader's recent items count half) answers items related to that item (co-visitation and
category), never the item; trending answers recency-weighted popularity whoever asks; the ranking campaign answers
only GetPersonalizedRanking (``inputList`` of at most 500, reordered by the reader's scores, unknown ids last in
their order). ``promotions`` give ``percentPromotedItems`` of the list's places to the best items matching the
promotion's filter (marked ``promotionName``, spread over the list); ``metadataColumns`` ``{"ITEMS": [...]}`` answer
each item's PutItems properties under the requested column names. ``context`` is accepted and ignored. Every answer
has a fresh ``recommendationId`` (``RID-<uuid>``, 40 characters).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import components  # noqa: F401 (puts handlers/ on the path: the contract below is the functions' own file)
from common.contract import FRESH_FILTER, FRESH_FILTER_EXPRESSION, SURFACES, Parameter, Surface
from tools.fake_personalize import (
    FakePersonalize,
    LoopbackServer,
    Reply,
    RequestRejectedError,
    error_reply,
    json_reply,
    operation_model,
    serve,
    validate_request,
)

__all__ = ["FilterRule", "LoopbackServer", "PersonalizeStandIn", "Weights", "parse_filter", "serve"]

ACCOUNT_ID = "123456789012"
DEFAULT_FILTERS = {"unread": 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("read")',
                   FRESH_FILTER: FRESH_FILTER_EXPRESSION}
DEFAULT_RESULTS = 25
MAX_RESULTS = 500
MAX_RANKED = 500  # GetPersonalizedRanking's inputList, as Personalize documents it
_FRESHNESS_HALF_LIFE_SECONDS = 7 * 24 * 3600.0

PUT_EVENTS = operation_model("personalize-events", "PutEvents")
PUT_ITEMS = operation_model("personalize-events", "PutItems")
GET_RECOMMENDATIONS = operation_model("personalize-runtime", "GetRecommendations")
GET_PERSONALIZED_RANKING = operation_model("personalize-runtime", "GetPersonalizedRanking")


@dataclass(frozen=True)
class Weights:
    event_types: Mapping[str, float] = field(
        default_factory=lambda: {"view": 1.0, "click": 2.0, "read": 3.0, "share": 4.0})
    covisitation: float = 1.0
    category: float = 0.6
    popularity: float = 0.3
    freshness: float = 0.1
    half_life_seconds: float = 1800.0
    recent_items: int = 10
    recent_decay: float = 0.7  # the weight of the n-th most recent item is recent_decay ** n

    def of(self, event_type: str) -> float:
        return self.event_types.get(event_type, 1.0)


_FILTER = re.compile(r"^\s*(EXCLUDE|INCLUDE)\s+ItemID\s+WHERE\s+(Interactions\.EVENT_TYPE|Items\.CATEGORY)\s+IN\s*"
                     r"\(\s*(.*?)\s*\)\s*$", re.IGNORECASE)
_VALUE = re.compile(r'^"([^"]*)"$|^\$([A-Za-z0-9_]+)$')
_RANGE = re.compile(r"^\s*(EXCLUDE|INCLUDE)\s+ItemID\s+WHERE\s+Items\.CREATION_TIMESTAMP\s*(>=|<=|>|<)\s*"
                    r"(\d+|\$[A-Za-z0-9_]+)\s*$", re.IGNORECASE)
_COMPARE: Mapping[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}


@dataclass(frozen=True)
class FilterRule:
    exclude: bool
    field: str  # "EVENT_TYPE" (of the reader's interactions) or "CATEGORY" (of the items)
    values: tuple[str, ...]  # literal values
    parameters: tuple[str, ...]  # $NAME placeholders, filled from filterValues
    operator: str | None = None  # for CREATION_TIMESTAMP: >, >=, <, <= the one value or parameter

    def matches_time(self, created: float | None, filter_values: Mapping[str, str]) -> bool:
        """Whether an item created at ``created`` matches a CREATION_TIMESTAMP comparison (unknown: never)."""
        raw = self.values[0] if self.values else filter_values.get(self.parameters[0])
        if raw is None:
            raise RequestRejectedError("InvalidInputException", f"the filter needs the filterValues key "
                                                                f"{self.parameters[0]}")
        try:
            bound = float(raw.strip().strip('"'))
        except ValueError:
            raise RequestRejectedError("InvalidInputException", f"not a number: {raw!r}") from None
        assert self.operator is not None
        return created is not None and _COMPARE[self.operator](created, bound)

    def resolve(self, filter_values: Mapping[str, str]) -> frozenset[str]:
        values = set(self.values)
        for name in self.parameters:
            if name not in filter_values:
                raise RequestRejectedError("InvalidInputException", f"the filter needs the filterValues key {name}")
            values |= {v.strip().strip('"') for v in filter_values[name].split(",") if v.strip()}
        return frozenset(values)


def parse_filter(expression: str) -> FilterRule:
    """The rule of one supported filter expression; ``ValueError`` for expressions the stand-in cannot apply."""
    ranged = _RANGE.match(expression)
    if ranged:
        bound = ranged.group(3)
        return FilterRule(exclude=ranged.group(1).upper() == "EXCLUDE", field="CREATION_TIMESTAMP",
                          values=() if bound.startswith("$") else (bound,),
                          parameters=(bound[1:],) if bound.startswith("$") else (), operator=ranged.group(2))
    match = _FILTER.match(expression)
    if not match:
        raise ValueError(f"unsupported filter expression for the sandbox stand-in: {expression!r}")
    values: list[str] = []
    parameters: list[str] = []
    for raw in (v.strip() for v in match.group(3).split(",")):
        value = _VALUE.match(raw)
        if not value:
            raise ValueError(f"unsupported filter value {raw!r} in {expression!r}")
        if value.group(1) is not None:
            values.append(value.group(1))
        else:
            parameters.append(value.group(2))
    return FilterRule(exclude=match.group(1).upper() == "EXCLUDE", field=match.group(2).split(".")[1].upper(),
                      values=tuple(values), parameters=tuple(parameters))


@dataclass(frozen=True)
class Interaction:
    at: float
    user_id: str | None
    session_id: str
    item_id: str
    event_type: str


@dataclass
class _Item:
    created: float | None = None
    category: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)  # as PutItems gave them (keys normalised)


def _properties(raw: str | None, where: str) -> dict[str, Any]:
    """A ``properties`` value: a JSON object, keys compared without case or underscores (CREATION_TIMESTAMP and
    creationTimestamp are the same field, as in the dataset schema)."""
    if raw is None:
        return {}
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise RequestRejectedError("InvalidInputException", f"{where}: properties must be a JSON object string")
    return {k.replace("_", "").lower(): v for k, v in document.items()}


class _Model:
    """The events and items seen so far, and the scores computed from them (not thread-safe on its own)."""

    def __init__(self, weights: Weights, clock: Callable[[], float]) -> None:
        self.weights, self.clock = weights, clock
        self.interactions: list[Interaction] = []
        self.items: dict[str, _Item] = defaultdict(_Item)

    def add_item(self, item_id: str, properties: Mapping[str, Any]) -> None:
        item = self.items[item_id]
        item.properties.update(properties)
        created = properties.get("creationtimestamp")
        if isinstance(created, int | float) and not isinstance(created, bool):
            item.created = float(created)
        category = properties.get("category")
        if isinstance(category, str) and category:
            item.category = category.split("|")[0]

    def add_event(self, interaction: Interaction, properties: Mapping[str, Any]) -> None:
        self.interactions.append(interaction)
        item = self.items[interaction.item_id]
        category = properties.get("category")
        if item.category is None and isinstance(category, str) and category:
            item.category = category

    def profile(self, reader: str) -> list[Interaction]:
        sessions = {i.session_id for i in self.interactions if i.user_id == reader or i.session_id == reader}
        return [i for i in self.interactions if i.user_id == reader or i.session_id in sessions]

    def _decay(self, at: float, now: float, half_life: float) -> float:
        return float(0.5 ** (max(0.0, now - at) / half_life))

    def recent(self, profile: list[Interaction]) -> dict[str, float]:
        strongest: dict[str, float] = {}
        last: dict[str, float] = {}
        for i in profile:
            strongest[i.item_id] = max(strongest.get(i.item_id, 0.0), self.weights.of(i.event_type))
            last[i.item_id] = max(last.get(i.item_id, float("-inf")), i.at)
        newest = sorted(last, key=lambda item: (-last[item], item))[:self.weights.recent_items]
        return {item: strongest[item] * self.weights.recent_decay ** rank for rank, item in enumerate(newest)}

    def scores(self, seeds: Mapping[str, float], own_sessions: set[str]) -> dict[str, float]:
        now = self.clock()
        candidates = set(self.items)
        covisit: dict[str, float] = defaultdict(float)
        sessions: dict[str, set[str]] = defaultdict(set)
        for i in self.interactions:
            if i.session_id not in own_sessions:
                sessions[i.session_id].add(i.item_id)
        for seen in sessions.values():
            for seed, weight in seeds.items():
                if seed in seen:
                    for other in seen - {seed}:
                        covisit[other] += weight / len(seen)
        category: dict[str, float] = defaultdict(float)
        for seed, weight in seeds.items():
            seed_category = self.items[seed].category if seed in self.items else None
            if seed_category:
                for other in candidates - {seed}:
                    if self.items[other].category == seed_category:
                        category[other] += weight
        popularity: dict[str, float] = defaultdict(float)
        for i in self.interactions:
            popularity[i.item_id] += self.weights.of(i.event_type) * self._decay(i.at, now,
                                                                                 self.weights.half_life_seconds)
        freshness = {item: self._decay(info.created, now, _FRESHNESS_HALF_LIFE_SECONDS)
                     for item, info in self.items.items() if info.created is not None}
        parts = [(self.weights.covisitation, covisit), (self.weights.category, category),
                 (self.weights.popularity, popularity), (self.weights.freshness, freshness)]
        total: dict[str, float] = dict.fromkeys(candidates, 0.0)
        for weight, part in parts:
            top = max(part.values(), default=0.0)
            if top > 0:
                for item, value in part.items():
                    total[item] = total.get(item, 0.0) + weight * value / top
        return total


class PersonalizeStandIn:
    def __init__(self, *, region: str = "us-east-1", prefix: str = "sandbox",
                 filters: Mapping[str, str] | None = None, weights: Weights | None = None,
                 clock: Callable[[], float] = time.time, events: FakePersonalize | None = None) -> None:
        base = f"arn:aws:personalize:{region}:{ACCOUNT_ID}"
        self.campaign_arn = f"{base}:campaign/{prefix}-campaign"
        # One campaign per surface, as training publishes them in campaign-arns (for-you keeps its older name).
        self.campaign_arns = {surface: self.campaign_arn if surface == Surface.FOR_YOU
                              else f"{base}:campaign/{prefix}-{surface}" for surface in SURFACES}
        self.dataset_arn = f"{base}:dataset/{prefix}/ITEMS"
        self.tracking_id = str(uuid.uuid5(uuid.NAMESPACE_URL, base + prefix))
        self.filter_arns = {name: f"{base}:filter/{prefix}-{name}"
                            for name in (DEFAULT_FILTERS if filters is None else filters)}
        self._rules = {self.filter_arns[name]: parse_filter(expression)
                       for name, expression in (DEFAULT_FILTERS if filters is None else filters).items()}
        self._weights, self._clock = weights or Weights(), clock
        self.events = events or FakePersonalize()
        self._lock = threading.Lock()
        self.reset()

    def parameters(self) -> dict[str, str]:
        return {Parameter.CAMPAIGN_ARN: self.campaign_arn, Parameter.CAMPAIGN_ARNS: json.dumps(self.campaign_arns),
                Parameter.FILTER_ARNS: json.dumps(self.filter_arns),
                Parameter.ITEMS_DATASET_ARN: self.dataset_arn, Parameter.TRACKING_ID: self.tracking_id}

    def reset(self) -> None:
        with self._lock:
            self._model = _Model(self._weights, self._clock)
            self._put_items: list[dict[str, Any]] = []
            self._recommendations: list[dict[str, Any]] = []
            self.events.calls.clear()

    def calls(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {"putEvents": list(self.events.calls), "putItems": list(self._put_items),
                    "getRecommendations": list(self._recommendations)}

    def handle(self, method: str, path: str, body: bytes) -> Reply:
        route = path.split("?", 1)[0]
        sandbox = {("GET", "/_sandbox/health"): lambda: json_reply({"status": "ok"}),
                   ("GET", "/_sandbox/calls"): lambda: json_reply(self.calls()),
                   ("GET", "/_sandbox/parameters"): lambda: json_reply(self.parameters()),
                   ("POST", "/_sandbox/reset"): self._reset_reply}
        if (method, route) in sandbox:
            return sandbox[(method, route)]()
        for operation, answer in ((PUT_EVENTS, self._put_events), (PUT_ITEMS, self._put_items_call),
                                  (GET_RECOMMENDATIONS, self._get_recommendations),
                                  (GET_PERSONALIZED_RANKING, self._get_personalized_ranking)):
            if (method, route) == (operation.http["method"], operation.http["requestUri"]):
                try:
                    return json_reply(answer(body))
                except RequestRejectedError as error:
                    return error_reply(operation, error.code, error.message)
        _, headers, payload = error_reply(None, "UnknownOperationException", f"no operation at {method} {route}")
        return 404, headers, payload

    def _reset_reply(self) -> Reply:
        self.reset()
        return json_reply({})

    def _put_events(self, body: bytes) -> dict[str, Any]:
        request = validate_request(PUT_EVENTS, body)
        if request["trackingId"] != self.tracking_id:
            raise RequestRejectedError("InvalidInputException", f"unknown trackingId {request['trackingId']}")
        properties = [_properties(e.get("properties"), f"eventList.{n + 1}")
                      for n, e in enumerate(request["eventList"])]
        self.events.put_events(body)  # validation again, then the configured faults; records the call
        with self._lock:
            for event, props in zip(request["eventList"], properties, strict=True):
                if "itemId" in event:
                    self._model.add_event(Interaction(at=float(event["sentAt"]), user_id=request.get("userId"),
                                                      session_id=request["sessionId"], item_id=event["itemId"],
                                                      event_type=event["eventType"]), props)
        return {}

    def _put_items_call(self, body: bytes) -> dict[str, Any]:
        request = validate_request(PUT_ITEMS, body)
        if request["datasetArn"] != self.dataset_arn:
            raise RequestRejectedError("ResourceNotFoundException", f"dataset {request['datasetArn']} not found")
        properties = [_properties(i.get("properties"), f"items.{n + 1}") for n, i in enumerate(request["items"])]
        with self._lock:
            for item, props in zip(request["items"], properties, strict=True):
                self._model.add_item(item["itemId"], props)
            self._put_items.append(request)
        return {}

    def _get_recommendations(self, body: bytes) -> dict[str, Any]:
        request = validate_request(GET_RECOMMENDATIONS, body)
        surface = self._surface(request.get("campaignArn") or request.get("recommenderArn"))
        if surface == Surface.RANKING:
            raise RequestRejectedError("InvalidInputException", "a ranking campaign answers GetPersonalizedRanking")
        user_id, item_id = request.get("userId"), request.get("itemId")
        if not user_id and not item_id:
            raise RequestRejectedError("InvalidInputException", "userId or itemId is required")
        if surface == Surface.RELATED and not item_id:
            raise RequestRejectedError("InvalidInputException", "a Similar-Items campaign needs an itemId")
        limit = int(request.get("numResults", DEFAULT_RESULTS))
        if limit > MAX_RESULTS:
            raise RequestRejectedError("InvalidInputException", f"numResults must be at most {MAX_RESULTS}")
        rule = self._rule(request.get("filterArn"))
        promotions = [(p, self._rule(p.get("filterArn"))) for p in request.get("promotions") or []]
        with self._lock:
            # Trending: what is popular now, whoever asks (the user id only applies filters).
            seeds_from = None if surface == Surface.TRENDING else user_id
            ranked = self._rank(seeds_from, None if surface == Surface.TRENDING else item_id, rule,
                                request.get("filterValues") or {}, profile_of=user_id)
            ranked = [(i, s) for i, s in ranked if i != item_id]
            listed = self._promote(ranked, limit, promotions, user_id)
            columns = self._columns(request.get("metadataColumns"))
            response = {"itemList": [self._predicted(i, s, promotion, columns) for i, s, promotion in listed],
                        "recommendationId": f"RID-{uuid.uuid4()}"}
            self._recommendations.append({"request": request, "response": response})
        return response

    def _get_personalized_ranking(self, body: bytes) -> dict[str, Any]:
        request = validate_request(GET_PERSONALIZED_RANKING, body)
        if self._surface(request.get("campaignArn")) != Surface.RANKING:
            raise RequestRejectedError("InvalidInputException", "GetPersonalizedRanking needs a ranking campaign")
        if len(request["inputList"]) > MAX_RANKED:
            raise RequestRejectedError("InvalidInputException", f"inputList must have at most {MAX_RANKED} items")
        rule = self._rule(request.get("filterArn"))
        with self._lock:
            scores = dict(self._rank(request["userId"], None, None, {}, profile_of=request["userId"]))
            candidates = list(dict.fromkeys(request["inputList"]))
            if rule is not None:
                kept = {i for i, _ in self._rank(request["userId"], None, rule, request.get("filterValues") or {},
                                                 profile_of=request["userId"])}
                candidates = [i for i in candidates if i in kept or i not in scores]
            ordered = sorted(candidates, key=lambda i: (-scores.get(i, 0.0), candidates.index(i)))
            columns = self._columns(request.get("metadataColumns"))
            response = {"personalizedRanking": [self._predicted(i, scores.get(i, 0.0), None, columns)
                                                for i in ordered],
                        "recommendationId": f"RID-{uuid.uuid4()}"}
            self._recommendations.append({"request": request, "response": response})
        return response

    def _surface(self, campaign_arn: str | None) -> str:
        for surface, arn in self.campaign_arns.items():
            if arn == campaign_arn:
                return surface
        raise RequestRejectedError("ResourceNotFoundException", f"campaign {campaign_arn} not found")

    @staticmethod
    def _columns(metadata_columns: Mapping[str, list[str]] | None) -> list[str]:
        columns = list((metadata_columns or {}).get("ITEMS", []))
        unknown = set(metadata_columns or {}) - {"ITEMS"}
        if unknown:
            raise RequestRejectedError("InvalidInputException", f"unknown metadata dataset {sorted(unknown)}")
        return columns

    def _predicted(self, item_id: str, score: float, promotion: str | None, columns: list[str]) -> dict[str, Any]:
        predicted: dict[str, Any] = {"itemId": item_id, "score": score}
        if promotion:
            predicted["promotionName"] = promotion
        if columns:
            properties = self._model.items[item_id].properties if item_id in self._model.items else {}
            predicted["metadata"] = {c: str(properties[c.replace("_", "").lower()]) for c in columns
                                     if c.replace("_", "").lower() in properties}
        return predicted

    def _promote(self, ranked: list[tuple[str, float]], limit: int,
                 promotions: list[tuple[Mapping[str, Any], FilterRule | None]],
                 user_id: str | None) -> list[tuple[str, float, str | None]]:
        """The list with ``percentPromotedItems`` of its places given to the best items matching the promotion's
        filter (spread over the list), as the service does."""
        listed: list[tuple[str, float, str | None]] = [(i, s, None) for i, s in ranked[:limit]]
        for promotion, rule in promotions:
            count = limit * int(promotion["percentPromotedItems"]) // 100
            if not count or rule is None:
                continue
            values = promotion.get("filterValues") or {}
            matching = [(i, s) for i, s in ranked if self._matches(rule, i, values, user_id)]
            promoted = matching[:count]
            rest = [entry for entry in listed if entry[0] not in {i for i, _ in promoted}]
            step = max(1, limit // max(1, len(promoted)))
            for n, (item, score) in enumerate(promoted):
                rest.insert(min(len(rest), n * step), (item, score, str(promotion["name"])))
            listed = rest[:limit]
        return listed

    def _matches(self, rule: FilterRule, item_id: str, filter_values: Mapping[str, str],
                 user_id: str | None) -> bool:
        item = self._model.items.get(item_id)
        if rule.field == "CREATION_TIMESTAMP":
            matched = rule.matches_time(item.created if item else None, filter_values)
        elif rule.field == "CATEGORY":
            matched = item is not None and item.category in rule.resolve(filter_values)
        else:
            profile = self._model.profile(user_id) if user_id else []
            matched = item_id in {i.item_id for i in profile if i.event_type in rule.resolve(filter_values)}
        return matched != rule.exclude

    def _rule(self, filter_arn: str | None) -> FilterRule | None:
        if filter_arn is None:
            return None
        if filter_arn not in self._rules:
            raise RequestRejectedError("ResourceNotFoundException", f"filter {filter_arn} not found")
        return self._rules[filter_arn]

    def _rank(self, user_id: str | None, item_id: str | None, rule: FilterRule | None,
              filter_values: Mapping[str, str], profile_of: str | None = None) -> list[tuple[str, float]]:
        """Candidates by score: seeded by the user's recent items, else by ``item_id`` (related; with a user, both),
        else popularity alone; ``rule`` filters with the profile of ``profile_of`` (default: ``user_id``)."""
        model = self._model
        profile = model.profile(user_id) if user_id else []
        seeds = model.recent(profile) if user_id else {}
        if item_id:
            seeds = {**{k: v * 0.5 for k, v in seeds.items()}, item_id: 1.0}
        scores = model.scores(seeds, {i.session_id for i in profile})
        if rule is not None:
            reader = profile_of or user_id
            scores = {item: s for item, s in scores.items() if self._matches(rule, item, filter_values, reader)}
        total = sum(scores.values()) or 1.0

        def order(item: str) -> tuple[float, float, str]:
            return -scores[item], -(model.items[item].created or 0.0), item

        return [(item, round(scores[item] / total, 6)) for item in sorted(scores, key=order)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--prefix", default="sandbox")
    args = parser.parse_args(argv)
    stand_in = PersonalizeStandIn(region=args.region, prefix=args.prefix)
    server = LoopbackServer.for_app(stand_in, port=args.port)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    print(json.dumps({"url": server.url, "parameters": stand_in.parameters()}), flush=True)
    stopped.wait()
    server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
