"""New items: kept in the items store first (nothing is lost), then sent to Personalize once an items dataset
exists, ≤ 10 per PutItems call (the client's retry mode retries throttling: PutItems allows about 10 calls a
second)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from common.catalog import MAX_ITEMS_PER_PUT, Item
from common.ssm import CachedParameter

logger = logging.getLogger(__name__)


class StoreUnavailableError(RuntimeError):
    """The items store refused a write: the client must retry (writes are idempotent)."""


class ItemsService:
    def __init__(self, *, s3_client: Any, bucket: str, events_client: Any, dataset_arn: CachedParameter) -> None:
        self._s3, self._bucket = s3_client, bucket
        self._events, self._dataset_arn = events_client, dataset_arn

    def add(self, items: Sequence[Item]) -> dict[str, Any]:
        self._store(items)
        try:
            dataset_arn = self._dataset_arn.get()
        except (ClientError, BotoCoreError):
            logger.exception("cannot read the items dataset ARN; the next training imports the items")
            dataset_arn = None
        if dataset_arn is None:
            return {"stored": len(items), "sentToPersonalize": 0, "pending": len(items)}
        sent = 0
        for start in range(0, len(items), MAX_ITEMS_PER_PUT):
            chunk = items[start:start + MAX_ITEMS_PER_PUT]
            if self._put_items(dataset_arn, chunk):
                sent += len(chunk)
        return {"stored": len(items), "sentToPersonalize": sent, "pending": len(items) - sent}

    def _store(self, items: Sequence[Item]) -> None:
        for item in items:
            body = json.dumps(item.document(), ensure_ascii=False).encode()
            for key in (item.by_id_key(), item.by_time_key()):
                try:
                    self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json")
                except (ClientError, BotoCoreError) as error:
                    raise StoreUnavailableError(f"items store write failed: {type(error).__name__}") from error

    def _put_items(self, dataset_arn: str, chunk: Sequence[Item]) -> bool:
        try:
            self._events.put_items(datasetArn=dataset_arn, items=[i.personalize_item() for i in chunk])
        except (ClientError, BotoCoreError) as error:
            logger.warning("PutItems failed (%s); the next training imports these items", error)
            return False
        return True
