"""Throttling of password and TOTP guesses by client address, by account, and by the pair of both.

Three moving windows (the `limits` library), each counting *failed* attempts only:

- **address + account** (``login_limit_pair``): slows one source guessing one account. This is the limit a
  guesser meets first, and it only shuts out that address: the clinician, logging in from another
  address, is not locked out by someone who knows their e-mail.
- **address** (``login_limit_address``): one source spraying many accounts.
- **account** (``login_limit_account``): many sources guessing one account. Only this one shuts the
  account for everyone (423); it is set high enough that it takes a distributed attack to reach it.

Keys are the normalised e-mail, never whether an account exists, so an unknown e-mail is throttled
exactly like a real one and the 401/429/423 pattern says nothing about who has an account.

The embedded default keeps the windows in process memory (one server process). With several processes
or replicas, point ``DERMALINK_RATE_LIMIT_STORAGE`` at Redis (``redis://host:6379/1``) so they share one
count.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

KEY_PREFIX = "dermalink-auth"


@dataclass(frozen=True)
class Refusal:
    """Why an attempt may not be made now, and for how many seconds."""

    scope: str  # "pair", "address" or "account"
    retry_after: int

    @property
    def account_locked(self) -> bool:
        return self.scope == "account"


def normalise_account(email: str) -> str:
    return email.strip().lower()[:254]


class LoginThrottle:
    def __init__(self, storage_url: str, *, per_pair: str, per_address: str, per_account: str) -> None:
        self._storage = storage_from_string(storage_url)
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._limits: dict[str, list[RateLimitItem]] = {
            "pair": parse_many(per_pair),
            "address": parse_many(per_address),
            "account": parse_many(per_account),
        }

    @staticmethod
    def _keys(address: str | None, account: str) -> dict[str, tuple[str, ...]]:
        address = address or "unknown"
        account = normalise_account(account)
        return {
            "pair": (KEY_PREFIX, "pair", address, account),
            "address": (KEY_PREFIX, "address", address),
            "account": (KEY_PREFIX, "account", account),
        }

    def check(self, address: str | None, account: str) -> Refusal | None:
        """None when one more attempt is allowed; otherwise the refusal that waits longest."""
        refusals = []
        now = time.time()
        for scope, keys in self._keys(address, account).items():
            for item in self._limits[scope]:
                if not self._limiter.test(item, *keys):
                    reset = self._limiter.get_window_stats(item, *keys).reset_time
                    refusals.append(Refusal(scope, max(1, math.ceil(reset - now))))
        return max(refusals, key=lambda r: (r.account_locked, r.retry_after), default=None)

    def failed(self, address: str | None, account: str) -> bool:
        """Count a failed attempt everywhere. True when it used up the account's own allowance."""
        exhausted = False
        for scope, keys in self._keys(address, account).items():
            for item in self._limits[scope]:
                self._limiter.hit(item, *keys)
                if scope == "account" and not self._limiter.test(item, *keys):
                    exhausted = True
        return exhausted

    def clear_account(self, account: str) -> None:
        """An admin unlock: forget the account's own window (the per-address windows stay)."""
        keys = self._keys(None, account)["account"]
        for item in self._limits["account"]:
            self._limiter.clear(item, *keys)

    def clear_pair(self, address: str | None, account: str) -> None:
        """A successful login forgets that address's failures for this account."""
        keys = self._keys(address, account)["pair"]
        for item in self._limits["pair"]:
            self._limiter.clear(item, *keys)
