"""The sandbox gateway enforces AWS_IAM like API Gateway: SigV4 recomputed with botocore for known credentials."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from tests.test_sandbox_gateway import KEY, REGION, Recorder, call, dev_without_reader_tokens, recorded_gateway
from tools.sandbox.gateway import (
    SANDBOX_CMS,
    IamPrincipal,
    ServingGateway,
    SignatureError,
    serving_routes,
    sign_request,
    stage_name,
    verify_signature,
)
from tools.synth import Synthesis

TARGET = "/v1/items"
BODY = json.dumps({"items": [{"itemId": "a", "creationTimestamp": 1_790_000_000}]}).encode()
STRANGER = IamPrincipal("AKIASTRANGER00000001", "stranger-secret", "arn:aws:iam::999999999999:user/stranger")


@pytest.fixture(scope="module")
def synthesis() -> Synthesis:
    return dev_without_reader_tokens()


def signed(principal: IamPrincipal = SANDBOX_CMS, body: bytes = BODY, target: str = TARGET,
           region: str = REGION) -> dict[str, str]:
    return sign_request("POST", f"http://127.0.0.1{target}", body, principal, region,
                        {"Content-Type": "application/json"})


def post(synthesis: Synthesis, headers: dict[str, str], body: bytes = BODY,
         target: str = TARGET) -> tuple[int, Any, Recorder]:
    items = Recorder()
    status, _, reply = call(recorded_gateway(synthesis, items=items), "POST", target, body, **headers)
    return status, reply, items


def test_a_request_signed_by_the_cms_reaches_the_handler_with_the_signer_identity(synthesis: Synthesis) -> None:
    status, _, items = post(synthesis, signed())
    assert status == 200 and len(items.events) == 1
    identity = items.events[0]["requestContext"]["identity"]
    assert (identity["userArn"], identity["accessKey"], identity["apiKey"]) == (SANDBOX_CMS.arn,
                                                                                SANDBOX_CMS.access_key, None)


@pytest.mark.parametrize(("headers", "message"), [
    ({"Content-Type": "application/json"}, "Missing Authentication Token"),
    ({"x-api-key": KEY, "Content-Type": "application/json"}, "Missing Authentication Token"),
    ({"Authorization": "Bearer abc", "Content-Type": "application/json"}, "requires 'Credential'"),
])
def test_unsigned_requests_and_the_pages_key_are_refused(synthesis: Synthesis, headers: dict[str, str],
                                                         message: str) -> None:
    status, reply, items = post(synthesis, headers)
    assert status == 403 and message in reply["message"] and items.events == []


def test_an_unknown_access_key_is_refused(synthesis: Synthesis) -> None:
    status, reply, items = post(synthesis, signed(STRANGER))
    assert (status, reply["message"]) == (403, "The security token included in the request is invalid.")
    assert items.events == []


def test_a_known_access_key_with_a_wrong_secret_is_refused(synthesis: Synthesis) -> None:
    forged = IamPrincipal(SANDBOX_CMS.access_key, "guessed-secret", SANDBOX_CMS.arn)
    status, reply, items = post(synthesis, signed(forged))
    assert status == 403 and reply["message"].startswith("The request signature we calculated does not match")
    assert items.events == []


@pytest.mark.parametrize("tamper", ["body", "path", "query", "header"])
def test_a_request_changed_after_signing_is_refused(synthesis: Synthesis, tamper: str) -> None:
    headers, body, target = signed(), BODY, TARGET
    if tamper == "body":
        body = BODY.replace(b'"a"', b'"b"')
    elif tamper == "path":
        target = "/v1/items/"
    elif tamper == "query":
        target = "/v1/items?x=1"
    else:
        headers["Content-Type"] = "text/plain"
        headers["Authorization"] = headers["Authorization"].replace("SignedHeaders=", "SignedHeaders=content-type;")
    status, reply, items = post(synthesis, headers, body, target)
    assert status == 403 and "signature" in reply["message"].lower() and items.events == []


def test_a_signature_scoped_to_another_region_is_refused(synthesis: Synthesis) -> None:
    routes = serving_routes(synthesis)
    gateway = ServingGateway(routes, {r.function: Recorder() for r in routes if r.function}, api_keys={KEY},
                             allowed_origins=(), stage=stage_name(synthesis), region=REGION)
    status, _, reply = call(gateway, "POST", TARGET, BODY, **signed(region="us-east-1"))
    assert status == 403 and "scoped" in reply["message"]
    assert call(gateway, "POST", TARGET, BODY, **signed())[0] == 200


def test_a_stale_or_future_signature_is_refused() -> None:
    headers = {k.lower(): v for k, v in signed().items()}
    principals = {SANDBOX_CMS.access_key: SANDBOX_CMS}
    now = datetime.datetime.now(datetime.UTC)
    assert verify_signature("POST", TARGET, headers, BODY, principals, REGION, now) == SANDBOX_CMS
    for skew in (datetime.timedelta(minutes=6), -datetime.timedelta(minutes=6)):
        with pytest.raises(SignatureError, match="Signature expired"):
            verify_signature("POST", TARGET, headers, BODY, principals, REGION, now + skew)


def test_a_payload_hash_header_that_lies_about_the_body_is_refused() -> None:
    headers = {k.lower(): v for k, v in signed().items()}
    headers["x-amz-content-sha256"] = "0" * 64
    with pytest.raises(SignatureError, match="x-amz-content-sha256"):
        verify_signature("POST", TARGET, headers, BODY, {SANDBOX_CMS.access_key: SANDBOX_CMS}, REGION)


def test_the_read_route_needs_no_signature_but_its_key(synthesis: Synthesis) -> None:
    gateway = recorded_gateway(synthesis)
    assert call(gateway, "GET", "/v1/recommendations/u1", x_api_key=KEY)[0] == 200
    assert call(gateway, "GET", "/v1/recommendations/u1", b"", **signed())[0] == 403
