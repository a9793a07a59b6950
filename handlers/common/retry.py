"""Which AWS errors are worth retrying, and how long to wait before the next attempt."""

from __future__ import annotations

from botocore.exceptions import ClientError, HTTPClientError

TRANSIENT_ERROR_CODES = frozenset({
    "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded", "ServiceUnavailable",
    "ServiceUnavailableException", "InternalServerError", "InternalFailure", "RequestTimeout",
    "RequestTimeoutException", "SlowDown",
})


def is_transient(error: Exception) -> bool:
    if isinstance(error, HTTPClientError):  # connection failures and read timeouts
        return True
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in TRANSIENT_ERROR_CODES or status == 429 or status >= 500
    return False


def backoff_delay(attempt: int, jitter: float, base: float = 0.05, cap: float = 2.0) -> float:
    """Exponential backoff with full jitter (``jitter`` in [0, 1)): attempt 0 waits up to ``base``."""
    return jitter * min(cap, base * (1 << min(attempt, 16)))
