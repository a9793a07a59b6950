"""The Personalize stand-in's answers for the surfaces beyond for you: Similar-Items (``itemId``), Trending-Now,
GetPersonalizedRanking, promotions and metadata columns, all through boto3 (requests validated by botocore's models on
both sides)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from common.catalog import Item
from common.contract import FRESH_FILTER, Parameter
from tests.test_sandbox_personalize import NOW, REGION, Clients, Clock
from tools.sandbox.personalize import PersonalizeStandIn, parse_filter, serve


@pytest.fixture()
def clients() -> Iterator[Clients]:
    """GIVEN the stand-in with its default filters (unread, fresh) and posts: three older ones, two published today."""
    clock = Clock()
    stand_in = PersonalizeStandIn(region=REGION, prefix="cp-test", clock=clock)
    with serve(stand_in) as url:
        clients = Clients(url, stand_in, clock)
        old = int(NOW) - 10 * 86400
        clients.put_items(Item("tech-2", old + 1, "tech"), Item("food-1", old + 2, "food"),
                          Item("new-1", int(NOW) - 3600, "food"), Item("new-2", int(NOW) - 7200, "tech"))
        clients.events.put_items(datasetArn=stand_in.dataset_arn, items=[{"itemId": "tech-1", "properties": json.dumps(
            {"creationTimestamp": old, "category": "tech", "title": "Tech one", "url": "https://b.example/tech-1"})}])
        yield clients


def campaign(clients: Clients, surface: str) -> str:
    return clients.stand_in.campaign_arns[surface]


def test_every_surface_has_a_campaign_published_as_training_would(clients: Clients) -> None:
    arns = json.loads(clients.stand_in.parameters()[Parameter.CAMPAIGN_ARNS])

    assert sorted(arns) == ["for-you", "ranking", "related", "trending"]
    assert arns["for-you"] == clients.stand_in.campaign_arn and len(set(arns.values())) == 4


def test_related_items_follow_the_item_and_never_include_it(clients: Clients) -> None:
    clients.put("s-9", "tech-1", "food-1")  # another reader linked tech-1 and food-1

    listed = clients.runtime.get_recommendations(campaignArn=campaign(clients, "related"), itemId="tech-1",
                                                 userId="s-anon", numResults=3)["itemList"]

    ids = [i["itemId"] for i in listed]
    assert "tech-1" not in ids and ids[0] in {"food-1", "tech-2"}
    with pytest.raises(ClientError, match="needs an itemId"):
        clients.runtime.get_recommendations(campaignArn=campaign(clients, "related"), userId="u")


def test_trending_is_what_is_popular_now_whoever_asks(clients: Clients) -> None:
    for session in ("s-1", "s-2", "s-3"):
        clients.put(session, "food-1", event_type="read")

    for_a = clients.runtime.get_recommendations(campaignArn=campaign(clients, "trending"), userId="a", numResults=2)
    for_b = clients.runtime.get_recommendations(campaignArn=campaign(clients, "trending"), userId="s-1", numResults=2)

    assert for_a["itemList"][0]["itemId"] == "food-1"
    assert [i["itemId"] for i in for_a["itemList"]] == [i["itemId"] for i in for_b["itemList"]]


def test_a_fresh_promotion_gives_its_share_to_posts_published_since(clients: Clients) -> None:
    for session in ("s-1", "s-2"):
        clients.put(session, "tech-1", "tech-2", "food-1", event_type="read")
    promotion = {"name": "fresh", "percentPromotedItems": 50, "filterArn": clients.stand_in.filter_arns[FRESH_FILTER],
                 "filterValues": {"SINCE": str(int(NOW) - 86400)}}

    listed = clients.recommend("reader-1", 4, promotions=[promotion])["itemList"]

    promoted = [i["itemId"] for i in listed if i.get("promotionName") == "fresh"]
    assert sorted(promoted) == ["new-1", "new-2"] and len(listed) == 4
    with pytest.raises(ClientError, match="SINCE"):
        clients.recommend("reader-1", 4, promotions=[{**promotion, "filterValues": {}}])


def test_the_fresh_filter_keeps_only_recent_posts(clients: Clients) -> None:
    ids = clients.ids("reader-1", 10, FRESH_FILTER, filterValues={"SINCE": str(int(NOW) - 86400)})

    assert sorted(ids) == ["new-1", "new-2"]
    assert parse_filter("EXCLUDE ItemID WHERE Items.CREATION_TIMESTAMP <= 5").matches_time(5, {}) is True


def test_personalized_ranking_reorders_the_candidates_with_metadata(clients: Clients) -> None:
    clients.put("s-1", "food-1", user="reader-1", event_type="read")
    clients.put("s-2", "food-1", "new-1")

    ranking = clients.runtime.get_personalized_ranking(
        campaignArn=campaign(clients, "ranking"), userId="reader-1", inputList=["tech-1", "new-1", "unknown"],
        metadataColumns={"ITEMS": ["TITLE", "URL", "CATEGORY", "CREATION_TIMESTAMP"]})

    ranked = ranking["personalizedRanking"]
    assert [i["itemId"] for i in ranked] == ["new-1", "tech-1", "unknown"]
    assert ranked[1]["metadata"] == {"TITLE": "Tech one", "URL": "https://b.example/tech-1", "CATEGORY": "tech",
                                     "CREATION_TIMESTAMP": str(int(NOW) - 10 * 86400)}
    assert ranking["recommendationId"].startswith("RID-")


def test_ranking_needs_the_ranking_campaign_and_at_most_500_candidates(clients: Clients) -> None:
    with pytest.raises(ClientError, match="ranking campaign"):
        clients.runtime.get_personalized_ranking(campaignArn=campaign(clients, "for-you"), userId="u",
                                                 inputList=["a"])
    with pytest.raises(ClientError, match="at most 500"):
        clients.runtime.get_personalized_ranking(campaignArn=campaign(clients, "ranking"), userId="u",
                                                 inputList=[f"p-{i}" for i in range(501)])
    with pytest.raises(ClientError, match="GetPersonalizedRanking"):
        clients.runtime.get_recommendations(campaignArn=campaign(clients, "ranking"), userId="u")


def test_metadata_columns_answer_what_put_items_gave(clients: Clients) -> None:
    listed = clients.runtime.get_recommendations(campaignArn=clients.stand_in.campaign_arn, userId="u", numResults=5,
                                                 metadataColumns={"ITEMS": ["CATEGORY"]})["itemList"]

    assert {i["itemId"]: i["metadata"] for i in listed}["food-1"] == {"CATEGORY": "food"}


def test_the_sandbox_publishes_each_surfaces_campaign_where_the_function_reads_it() -> None:
    """GIVEN the dev stack's functions and the stand-in, WHEN the sandbox publishes what training would, THEN the
    recommendations function's campaign-arns parameter holds every surface's campaign."""
    from tools.sandbox import __main__ as sandbox
    from tools.synth import synthesize_stack

    class Ssm:
        def __init__(self) -> None:
            self.parameters: dict[str, str] = {}

        def put_parameter(self, *, Name: str, Value: str, Type: str, Overwrite: bool) -> None:  # noqa: N803
            self.parameters[Name] = Value

    stand_in = PersonalizeStandIn(region=REGION, prefix="cp-dev-euw1")
    ssm = Ssm()

    sandbox.publish_parameters(ssm, sandbox.function_parameters(synthesize_stack("dev", preview=False)),
                               stand_in.parameters())

    assert json.loads(ssm.parameters["/cp-dev-euw1/personalize/campaign-arns"]) == stand_in.campaign_arns
