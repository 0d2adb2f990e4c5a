"""Experiment arms: a stable hash of client id and salt puts every client in the holdout, the challenger or the
champion arm — the same arm on every worker, after every restart, with no state to share.

The holdout (``CRM_HOLDOUT_SHARE``, 5 % by default) receives no retention or win-back action; its decisions say
what they would have done. The challenger arm (``CRM_CHALLENGER_SHARE`` of clients) is served by an approved
candidate ruleset (``CRM_CHALLENGER_RULESET``); the champion (the active ruleset) serves everyone else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

HOLDOUT, CHAMPION, CHALLENGER = "holdout", "champion", "challenger"
ARMS = (HOLDOUT, CHAMPION, CHALLENGER)


@dataclass(frozen=True)
class ArmPlan:
    """How clients are split: the salt and the shares of the holdout and the challenger."""

    salt: str
    holdout_share: float
    challenger_share: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.holdout_share <= 1 or not 0 <= self.challenger_share <= 1 or \
                self.holdout_share + self.challenger_share > 1:
            raise ValueError("arm shares must be between 0 and 1 and add up to at most 1")

    def position(self, client_id: str) -> float:
        """The client's uniform position in [0, 1): the first 8 bytes of BLAKE2b(salt:client_id)."""
        digest = hashlib.blake2b(f"{self.salt}:{client_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2.0 ** 64

    def arm(self, client_id: str) -> str:
        u = self.position(client_id)
        if u < self.holdout_share:
            return HOLDOUT
        if u < self.holdout_share + self.challenger_share:
            return CHALLENGER
        return CHAMPION
