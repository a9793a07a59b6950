"""One interaction as Amazon Personalize stores it, whichever way it arrives: the bulk CSV training imports and the
PutEvents call the event processor makes describe an event with the same values, so Personalize keeps it once.

The rule (see the README, "Training"): a FULL import replaces earlier *bulk* data only, and events recorded with
PutEvents stay; Personalize keeps one of two interactions with exactly the same timestamp and identical properties.
So the bulk row of an event that real time already delivered must be its exact twin:
- the same user id (signed-in readers only: anonymous events reach Personalize through PutEvents alone), item id and
  event type;
- the same timestamp at the same precision: whole seconds, the precision of the dataset's TIMESTAMP column. PutEvents
  sends ``sentAt`` truncated to the second too, never the client's milliseconds;
- the same recommendation id and impression (in the reader's order), and no other interaction column.
"""

from __future__ import annotations

from common.events import ClickEvent

INTERACTIONS_HEADER = ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "RECOMMENDATION_ID", "IMPRESSION")


def interaction_seconds(event: ClickEvent) -> int:
    """The interaction's timestamp for Personalize: the client's time, truncated to whole epoch seconds."""
    return event.timestamp_ms // 1000


def interaction_row(event: ClickEvent) -> list[str]:
    """The bulk CSV row of a signed-in reader's event (columns ``INTERACTIONS_HEADER``)."""
    if event.user_id is None:
        raise ValueError("anonymous events are not imported in bulk")
    return [event.user_id, event.item_id, str(interaction_seconds(event)), event.event_type,
            event.recommendation_id or "", "|".join(event.impression)]
