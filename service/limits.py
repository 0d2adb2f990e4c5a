"""Rate limits: requests per API key per second (by role, or the key's own figure), sign-in attempts per client
address per minute.

Counting is a fixed window: each key has a counter per window (one second for keys, one minute for sign-in); a
request over the limit is refused with 429 ``rate_limited`` and ``Retry-After`` (whole seconds until the window
ends). With ``CRM_RATE_LIMIT_REDIS`` the counters live in Redis (one ``INCRBY`` + ``EXPIRE`` round trip per
request, awaited on the worker's event loop so that other requests go on meanwhile), so every worker and replica
shares them; without it each worker process counts on its own, so a key may get up to (workers × limit) per
second across a server's workers. If Redis cannot be reached, the worker
falls back to its own counters (and says so in the log) rather than refusing or admitting everything.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time

from service.errors import ApiError

log = logging.getLogger("crm.limits")

# Requests per second per key, by role: a front-office system asks for many clients (at least one full batch of
# 1,000 a second must fit); people need few.
DEFAULT_RATE_LIMITS: dict[str, int] = {
    "front_office": 2000, "branch_manager": 50, "compliance": 50, "data_scientist": 50, "admin": 1000,
}
SIGNIN_WINDOW_S = 60.0
REDIS_RETRY_S = 5.0


class RateLimitedError(ApiError):
    """Over the limit: 429 ``rate_limited``, with the seconds to wait in ``Retry-After``."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__("rate_limited", message)
        self.retry_after_s = retry_after_s


def role_limits(overrides: dict[str, int], roles: list[str]) -> dict[str, int]:
    """Per-role limits: the defaults with ``overrides`` (``CRM_RATE_LIMITS``) on top, refusing unknown roles."""
    unknown = sorted(set(overrides) - set(roles))
    if unknown:
        raise ValueError(f"CRM_RATE_LIMITS names unknown roles {unknown}; roles are {sorted(roles)}")
    bad = {r: v for r, v in overrides.items() if not isinstance(v, int) or v < 0}
    if bad:
        raise ValueError(f"CRM_RATE_LIMITS: a limit is a whole number of requests per second, 0 for none: {bad}")
    return {**{r: DEFAULT_RATE_LIMITS.get(r, 50) for r in roles}, **overrides}


class Limiter:
    """Fixed-window counters, in Redis when a URL is given, else in this process. The checks are coroutines: the
    Redis round trip is awaited (each event loop gets its own asyncio client)."""

    def __init__(self, redis_url: str | None = None) -> None:
        self._local: dict[str, tuple[int, int]] = {}  # bucket → (window number, count)
        self._lock = threading.Lock()
        self._redis_url = redis_url
        self._redis = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._redis_down_until = 0.0
        self.shared = redis_url is not None

    def _client(self):
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            import redis.asyncio

            # Bounded waits (the URL may set others): a slow Redis must not hold the request long.
            self._redis = redis.asyncio.Redis.from_url(self._redis_url, socket_timeout=0.1,
                                                       socket_connect_timeout=0.25)
            self._loop = loop
        return self._redis

    def _count_local(self, bucket: str, window: int, cost: int) -> int:
        with self._lock:
            seen_window, count = self._local.get(bucket, (window, 0))
            count = (count if seen_window == window else 0) + cost
            if len(self._local) > 100_000:
                self._local.clear()
            self._local[bucket] = (window, count)
            return count

    async def _count(self, bucket: str, window: int, window_s: float, cost: int) -> int:
        if self._redis_url and time.monotonic() >= self._redis_down_until:
            try:
                key = f"crm:rate:{bucket}:{window}"
                pipe = self._client().pipeline(transaction=False)
                pipe.incrby(key, cost)
                pipe.expire(key, math.ceil(window_s) + 1)
                return int((await pipe.execute())[0])
            except Exception as e:  # noqa: BLE001 - Redis away: count here instead of failing every request
                log.warning("rate limits: Redis unreachable, counting in this worker for %ss: %s", REDIS_RETRY_S, e)
                self._redis_down_until = time.monotonic() + REDIS_RETRY_S
        return self._count_local(bucket, window, cost)

    async def hit(self, bucket: str, limit: int, window_s: float, cost: int = 1) -> float | None:
        """Count ``cost`` against ``bucket``; None when within ``limit`` per ``window_s``, else the seconds until
        the window ends. A limit of 0 means none."""
        if limit <= 0:
            return None
        now = time.time()
        window = int(now // window_s)
        if await self._count(bucket, window, window_s, cost) <= limit:
            return None
        return (window + 1) * window_s - now

    async def check_key(self, key_id: str, limit: int, cost: int = 1) -> None:
        """Raise :class:`RateLimitedError` when the key is over ``limit`` requests per second; a request that costs
        more than the whole limit could never pass, so it is refused as too large instead of told to wait."""
        if 0 < limit < cost:
            raise ApiError("batch_too_large", f"this request counts {cost} clients but this key may ask for {limit} a "
                                              f"second; split it into batches of at most {limit}")
        wait = await self.hit(f"key:{key_id}", limit, 1.0, cost)
        if wait is not None:
            raise RateLimitedError(f"this key may make {limit} requests per second (a batch counts each client); "
                                   "slow down and retry after the time in Retry-After", max(1, math.ceil(wait)))

    async def check_signin(self, address: str, limit: int) -> None:
        """Raise :class:`RateLimitedError` when ``address`` has tried to sign in ``limit`` times this minute."""
        wait = await self.hit(f"signin:{address}", limit, SIGNIN_WINDOW_S)
        if wait is not None:
            raise RateLimitedError(f"too many sign-in attempts from this address ({limit} a minute); try again "
                                   "later", max(1, math.ceil(wait)))
