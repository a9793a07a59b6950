"""Reader tokens: what the sites' backend runs to mint them, and how the operator sets and rotates their secret.

A reader token is a standard JWT (HS256) with ``iss`` = ``readerTokenIssuer``, ``aud`` = ``readerTokenAudience``,
``sub`` = the reader id, ``iat`` and ``exp`` (at most ``readerTokenMaxLifetimeSeconds`` apart). Any JWT library can
mint it; ``mint`` below is the reference (PyJWT). The secret lives in Secrets Manager (output
``readerTokenSecretArn``, encrypted with the stack key); the backend reads its ``AWSCURRENT`` version. ``rotate``
puts a new random version: the authorizer accepts the current and the previous version, so tokens minted before a
rotation keep working until they expire; rotate again only after ``readerTokenMaxLifetimeSeconds`` plus the
authorizers' secret cache (5 minutes) have passed.

    python -m tools.reader_token rotate --secret-arn <readerTokenSecretArn>
    python -m tools.reader_token mint --secret-arn <arn> --issuer <iss> --audience <aud> --reader <id> [--lifetime 900]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Sequence
from typing import Any

import boto3
import jwt

SECRET_BYTES = 48  # 384 bits, above HS256's 256-bit minimum


def mint(secret: str, *, issuer: str, audience: str, reader: str, lifetime_seconds: int = 900,
         now: float | None = None) -> str:
    """A reader token for ``reader`` valid for ``lifetime_seconds`` from ``now``."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iss": issuer, "aud": audience, "sub": reader, "iat": issued,
                              "exp": issued + lifetime_seconds}
    return jwt.encode(claims, secret, algorithm="HS256")


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def rotate(client: Any, secret_arn: str) -> str:
    """Put a new random version (it becomes AWSCURRENT; the former one AWSPREVIOUS); returns its version id."""
    version: str = client.put_secret_value(SecretId=secret_arn, SecretString=new_secret())["VersionId"]
    return version


def current_secret(client: Any, secret_arn: str) -> str:
    value: str = client.get_secret_value(SecretId=secret_arn, VersionStage="AWSCURRENT")["SecretString"]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.reader_token", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rotate_cmd = commands.add_parser("rotate", help="put a new random secret version")
    rotate_cmd.add_argument("--secret-arn", required=True)
    mint_cmd = commands.add_parser("mint", help="mint a token with the current secret (for tests and tools)")
    mint_cmd.add_argument("--secret-arn", required=True)
    mint_cmd.add_argument("--issuer", required=True)
    mint_cmd.add_argument("--audience", default="clickstream-readers")
    mint_cmd.add_argument("--reader", required=True)
    mint_cmd.add_argument("--lifetime", type=int, default=900)
    args = parser.parse_args(argv)
    client = boto3.client("secretsmanager")
    if args.command == "rotate":
        print(f"new version {rotate(client, args.secret_arn)}")
        return 0
    print(mint(current_secret(client, args.secret_arn), issuer=args.issuer, audience=args.audience,
               reader=args.reader, lifetime_seconds=args.lifetime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
