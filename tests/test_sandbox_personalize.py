"""The sandbox's Personalize stand-in: the service's wire format and validation, and answers that follow events."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from common.catalog import Item
from tools.fake_personalize import FakePersonalize
from tools.sandbox.personalize import PersonalizeStandIn, parse_filter, serve

NOW = 1_800_000_000.0
REGION = "eu-west-1"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class Clients:
    def __init__(self, url: str, stand_in: PersonalizeStandIn, clock: Clock, validate: bool = True) -> None:
        config = Config(parameter_validation=validate, retries={"total_max_attempts": 1})
        kwargs: dict[str, Any] = {"endpoint_url": url, "region_name": REGION, "aws_access_key_id": "testing",
                                  "aws_secret_access_key": "testing", "config": config}
        self.url, self.stand_in, self.clock = url, stand_in, clock
        self.events = boto3.client("personalize-events", **kwargs)
        self.runtime = boto3.client("personalize-runtime", **kwargs)
        self._counter = 0

    def put(self, session: str, *items: str, user: str | None = None, event_type: str = "view",
            at: float | None = None, **extra: Any) -> None:
        events = []
        for item in items:
            self._counter += 1
            events.append({"eventId": f"e-{self._counter}", "eventType": event_type, "itemId": item,
                           "sentAt": at if at is not None else self.clock.now, **extra})
        request: dict[str, Any] = {"trackingId": self.stand_in.tracking_id, "sessionId": session, "eventList": events}
        if user:
            request["userId"] = user
        self.events.put_events(**request)

    def put_items(self, *items: Item) -> None:
        self.events.put_items(datasetArn=self.stand_in.dataset_arn, items=[i.personalize_item() for i in items])

    def recommend(self, user: str, num: int = 25, filter_name: str | None = None, **extra: Any) -> dict[str, Any]:
        call: dict[str, Any] = {"campaignArn": self.stand_in.campaign_arn, "userId": user, "numResults": num, **extra}
        if filter_name:
            call["filterArn"] = self.stand_in.filter_arns[filter_name]
        response: dict[str, Any] = self.runtime.get_recommendations(**call)
        return response

    def ids(self, user: str, num: int = 25, filter_name: str | None = None, **extra: Any) -> list[str]:
        return [i["itemId"] for i in self.recommend(user, num, filter_name, **extra)["itemList"]]


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def stand_in(clock: Clock) -> PersonalizeStandIn:
    return PersonalizeStandIn(region=REGION, prefix="cp-test", clock=clock,
                              filters={"unread": 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("read")',
                                       "category": "INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)"})


@pytest.fixture()
def clients(stand_in: PersonalizeStandIn, clock: Clock) -> Iterator[Clients]:
    with serve(stand_in) as url:
        yield Clients(url, stand_in, clock)


@pytest.fixture()
def unchecked(clients: Clients) -> Clients:
    """Clients that send what they are given: the stand-in's own validation answers."""
    return Clients(clients.url, clients.stand_in, clients.clock, validate=False)


def _error(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response: Any = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


# --- the wire: validation with botocore's models, errors as the service answers them ------------------------------

def _view(**extra: Any) -> dict[str, Any]:
    return {"eventId": "e", "eventType": "view", "itemId": "a", "sentAt": NOW, **extra}


TRACKING = "<the stand-in's tracking id>"


@pytest.mark.parametrize("request_", [
    {"sessionId": "s", "eventList": [_view()]},  # no trackingId
    {"trackingId": TRACKING, "sessionId": "s", "eventList": []},  # fewer than 1 event
    {"trackingId": TRACKING, "sessionId": "s", "eventList": [_view(eventId=f"e{i}") for i in range(11)]},
    {"trackingId": TRACKING, "sessionId": "s", "eventList": [_view(eventId="")]},
    {"trackingId": TRACKING, "sessionId": "s", "eventList": [_view(recommendationId="r" * 41)]},
    {"trackingId": TRACKING, "sessionId": "s", "eventList": [_view(impression=[f"i{n}" for n in range(26)])]},
    {"trackingId": TRACKING, "sessionId": "s" * 257, "eventList": [_view()]},
])
def test_put_events_that_break_the_model_get_invalid_input_400(unchecked: Clients, request_: dict[str, Any]) -> None:
    # GIVEN a request valid but for one member
    if request_.get("trackingId") == TRACKING:
        request_ = {**request_, "trackingId": unchecked.stand_in.tracking_id}
    # WHEN it is sent unchecked, THEN the stand-in refuses it as the service does and learns nothing
    with pytest.raises(ClientError) as raised:
        unchecked.events.put_events(**request_)
    assert _error(raised) == ("InvalidInputException", 400)
    assert unchecked.stand_in.calls()["putEvents"] == []


def test_get_recommendations_outside_the_model_get_invalid_input_400(unchecked: Clients) -> None:
    arn = unchecked.stand_in.campaign_arn
    for call in ({"campaignArn": arn, "userId": "u", "numResults": -1},
                 {"campaignArn": arn, "userId": "u" * 257},
                 {"campaignArn": arn, "userId": "u", "numResults": 501},  # the service's limit, not the model's
                 {"campaignArn": arn},  # neither userId nor itemId
                 {"campaignArn": "not-an-arn", "userId": "u"}):  # a pattern botocore's client never checks
        with pytest.raises(ClientError) as raised:
            unchecked.runtime.get_recommendations(**call)
        assert _error(raised) == ("InvalidInputException", 400), call
    assert unchecked.stand_in.calls()["getRecommendations"] == []


def test_a_valid_unchecked_request_is_accepted(unchecked: Clients) -> None:
    # the negative cases above fail for their one bad member, not for the way they are sent
    unchecked.events.put_events(trackingId=unchecked.stand_in.tracking_id, sessionId="s", eventList=[_view()])
    assert unchecked.ids("u") == ["a"]


def test_unknown_campaign_filter_and_dataset_are_resource_not_found_404(clients: Clients) -> None:
    other = clients.stand_in.campaign_arn.replace("cp-test", "other")
    with pytest.raises(ClientError) as raised:
        clients.runtime.get_recommendations(campaignArn=other, userId="u")
    assert _error(raised) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as raised:
        clients.recommend("u", filterArn=other.replace("campaign/", "filter/"))
    assert _error(raised) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as raised:
        clients.events.put_items(datasetArn=clients.stand_in.dataset_arn + "X",
                                 items=[{"itemId": "a", "properties": "{}"}])
    assert _error(raised) == ("ResourceNotFoundException", 404)


def test_unknown_tracking_id_and_properties_that_are_not_json_objects_are_refused(clients: Clients) -> None:
    with pytest.raises(ClientError) as raised:
        clients.events.put_events(trackingId="someone-else", sessionId="s",
                                  eventList=[{"eventId": "e", "eventType": "view", "sentAt": NOW}])
    assert _error(raised)[0] == "InvalidInputException"
    with pytest.raises(ClientError) as raised:
        clients.put("s", "a", properties="[1, 2]")
    assert _error(raised)[0] == "InvalidInputException"
    with pytest.raises(ClientError) as raised:
        clients.events.put_items(datasetArn=clients.stand_in.dataset_arn, items=[{"itemId": "a", "properties": "x"}])
    assert _error(raised)[0] == "InvalidInputException"
    assert clients.stand_in.calls()["putEvents"] == [] and clients.stand_in.calls()["putItems"] == []


def test_a_timestamp_that_is_not_epoch_seconds_is_invalid_input(clients: Clients) -> None:
    body = {"trackingId": clients.stand_in.tracking_id, "sessionId": "s", "eventList": [_view(sentAt="yesterday")]}
    request = urllib.request.Request(f"{clients.url}/events", data=json.dumps(body).encode(), method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 400 and raised.value.headers["x-amzn-ErrorType"] == "InvalidInputException"


def test_a_body_that_is_not_json_and_an_unknown_route_are_refused(clients: Clients) -> None:
    request = urllib.request.Request(f"{clients.url}/recommendations", data=b"{nope", method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 400 and raised.value.headers["x-amzn-ErrorType"] == "SerializationException"
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(urllib.request.Request(f"{clients.url}/users", data=b"{}", method="POST"), timeout=5)
    assert raised.value.code == 404


def test_put_events_faults_of_the_fake_apply_and_a_throttled_event_is_not_learned(clock: Clock) -> None:
    # GIVEN a stand-in whose PutEvents always throttles
    stand_in = PersonalizeStandIn(region=REGION, clock=clock, events=FakePersonalize(throttle_probability=1.0))
    with serve(stand_in) as url:
        clients = Clients(url, stand_in, clock)
        clients.put_items(Item("a", int(NOW)), Item("b", int(NOW) - 10))
        # WHEN an event is sent, THEN boto3 sees the throttling, and nothing changed
        with pytest.raises(ClientError) as raised:
            clients.put("s", "b", event_type="share")
        assert _error(raised)[0] == "ThrottlingException"
        assert clients.ids("u") == ["a", "b"] and stand_in.calls()["putEvents"] == []


# --- answers that react to events ---------------------------------------------------------------------------------

def test_co_visitation_recommends_what_other_sessions_saw_with_the_readers_items(clients: Clients) -> None:
    # GIVEN sessions in which A was seen with B twice and with C once
    clients.put("s-1", "A", "B")
    clients.put("s-2", "A", "B")
    clients.put("s-3", "A", "C")
    clients.put("s-4", "D")
    before = clients.ids("reader")
    # WHEN a reader views A
    clients.put("s-reader", "A", user="reader")
    after = clients.ids("reader", filter_name=None)
    # THEN B comes first, then C, and the answer changed
    assert after.index("B") < after.index("C") < after.index("D")
    assert after != before


def test_recommendations_follow_the_category_of_the_readers_latest_clicks(clients: Clients) -> None:
    # GIVEN posts known only from PutItems (nobody read them yet), in two categories
    posts = [Item(f"tech-{i}", int(NOW) - 100 * i, "tech") for i in range(3)]
    posts += [Item(f"food-{i}", int(NOW) - 100 * i - 50, "food") for i in range(3)]
    clients.put_items(*posts)
    # THEN an unknown reader already gets them, newest first
    assert clients.ids("new-reader") == ["tech-0", "food-0", "tech-1", "food-1", "tech-2", "food-2"]
    # WHEN the reader clicks a food post, THEN food posts lead; then a tech post, THEN tech posts lead
    clients.put("s", "food-2", user="reader", event_type="click")
    assert {*clients.ids("reader", 2)} <= {"food-0", "food-1", "food-2"}
    clients.clock.now += 60
    clients.put("s", "tech-2", user="reader", event_type="click")
    assert {*clients.ids("reader", 2)} <= {"tech-0", "tech-1", "tech-2"}


def test_unknown_readers_get_recency_weighted_popular_items(clients: Clients) -> None:
    # GIVEN "old" read by four readers three hours ago, "new" by two readers just now
    for n in range(4):
        clients.put(f"old-{n}", "old", at=NOW - 3 * 3600, event_type="read")
    for n in range(2):
        clients.put(f"new-{n}", "new", event_type="read")
    # THEN recency wins over the raw count (halving every 30 minutes)
    response = clients.recommend("never-seen")
    assert [i["itemId"] for i in response["itemList"]] == ["new", "old"]
    assert abs(sum(i["score"] for i in response["itemList"]) - 1.0) < 1e-3
    assert response["itemList"][0]["score"] > response["itemList"][1]["score"] > 0


def test_the_unread_filter_excludes_what_the_reader_read_and_no_filter_excludes_nothing(clients: Clients) -> None:
    clients.put_items(*(Item(f"p{i}", int(NOW) - i, "news") for i in range(4)))
    clients.put("s", "p0", user="reader", event_type="read")
    clients.put("s", "p1", user="reader", event_type="view")
    assert "p0" not in clients.ids("reader", filter_name="unread")
    assert "p1" in clients.ids("reader", filter_name="unread")  # viewed, not read
    assert "p0" in clients.ids("reader")
    assert "p0" in clients.ids("someone-else", filter_name="unread")


def test_a_session_id_works_as_the_user_id_of_an_anonymous_reader(clients: Clients) -> None:
    clients.put_items(*(Item(f"p{i}", int(NOW) - i, "news") for i in range(3)))
    clients.put("anon-session", "p0", event_type="read")
    assert "p0" not in clients.ids("anon-session", filter_name="unread")


def test_filter_values_fill_placeholders_and_a_missing_one_is_invalid_input(clients: Clients) -> None:
    clients.put_items(Item("t", int(NOW), "tech"), Item("f", int(NOW), "food"), Item("g", int(NOW), "games"))
    assert sorted(clients.ids("u", filter_name="category", filterValues={"CATEGORY": '"tech","games"'})) == ["g", "t"]
    with pytest.raises(ClientError) as raised:
        clients.ids("u", filter_name="category")
    assert _error(raised) == ("InvalidInputException", 400)


def test_num_results_is_honoured_and_each_answer_has_a_fresh_id_putevents_accepts(clients: Clients) -> None:
    clients.put_items(*(Item(f"p{i}", int(NOW) - i) for i in range(8)))
    first, second = clients.recommend("u", 3), clients.recommend("u", 5)
    assert len(first["itemList"]) == 3 and len(second["itemList"]) == 5
    assert first["recommendationId"] != second["recommendationId"]
    assert len(first["recommendationId"]) <= 40
    # the click that closes the loop carries the id and the impression: the model accepts both
    clients.put("s", "p1", event_type="click", recommendationId=first["recommendationId"],
                impression=[i["itemId"] for i in first["itemList"]])
    assert clients.stand_in.calls()["putEvents"][-1]["eventList"][0]["recommendationId"] == first["recommendationId"]


def test_items_dataset_fields_in_either_spelling_are_understood(clients: Clients) -> None:
    clients.events.put_items(datasetArn=clients.stand_in.dataset_arn, items=[
        {"itemId": "upper", "properties": json.dumps({"CREATION_TIMESTAMP": NOW, "CATEGORY": "x"})},
        {"itemId": "camel", "properties": json.dumps({"creationTimestamp": NOW - 5, "category": "x"})}])
    assert clients.ids("u") == ["upper", "camel"]
    assert sorted(clients.ids("u", filter_name="category", filterValues={"CATEGORY": '"x"'})) == ["camel", "upper"]


# --- introspection and process ------------------------------------------------------------------------------------

def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())


def test_the_sandbox_api_lists_calls_parameters_and_resets(clients: Clients) -> None:
    clients.put_items(Item("a", int(NOW)))
    clients.put("s", "a", user="u")
    clients.recommend("u", 1)
    assert _get(f"{clients.url}/_sandbox/health") == {"status": "ok"}
    calls = _get(f"{clients.url}/_sandbox/calls")
    assert [e["itemId"] for c in calls["putEvents"] for e in c["eventList"]] == ["a"]
    assert calls["putEvents"][0]["userId"] == "u" and calls["putItems"][0]["items"][0]["itemId"] == "a"
    assert calls["getRecommendations"][0]["response"]["itemList"][0]["itemId"] == "a"
    parameters = _get(f"{clients.url}/_sandbox/parameters")
    assert json.loads(parameters["filter-arns"])["unread"] == clients.stand_in.filter_arns["unread"]
    assert parameters["campaign-arn"] == clients.stand_in.campaign_arn
    urllib.request.urlopen(urllib.request.Request(f"{clients.url}/_sandbox/reset", data=b"", method="POST"), timeout=5)
    assert _get(f"{clients.url}/_sandbox/calls") == {"putEvents": [], "putItems": [], "getRecommendations": []}
    assert clients.ids("u") == []


def test_unsupported_filter_expressions_are_refused_when_the_stand_in_is_built() -> None:
    assert parse_filter('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("read", "share")').values == ("read", "share")
    with pytest.raises(ValueError, match="unsupported filter expression"):
        PersonalizeStandIn(filters={"x": "INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP BETWEEN 5 AND 6"})
    with pytest.raises(ValueError, match="unsupported filter value"):
        parse_filter("EXCLUDE ItemID WHERE Items.CATEGORY IN (news)")


def test_the_command_line_server_prints_its_url_and_stops_on_sigterm() -> None:
    process = subprocess.Popen([sys.executable, "-m", "tools.sandbox.personalize", "--region", REGION],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        assert started["url"].startswith("http://127.0.0.1:")
        assert _get(f"{started['url']}/_sandbox/health") == {"status": "ok"}
        assert started["parameters"]["campaign-arn"].startswith(f"arn:aws:personalize:{REGION}:")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
