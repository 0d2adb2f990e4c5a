"""Who may see which client, broker and branch: the one scoping rule of the API, the web pages and the CLI.

A key is firm-wide, branch-scoped (``--branch B003``) or broker-scoped (``--broker K00012``, which implies the
broker's branch). A caller sees a client when the client's account is held at the caller's branch and, for a
broker-scoped caller, served by the caller's broker; a broker when it works at the caller's branch (for a
broker-scoped caller: only itself); a branch when it is the caller's own. Firm-wide callers (and every admin) see
everything without any lookup.

Code that shows or changes anything about a client, broker or branch asks here and nowhere else::

    from service import scope

    if not scope.may_see_client(caller, client_id, directory):
        raise ClientNotFoundError(client_id)  # the same answer as for a client that does not exist

or lets :func:`ensure_client` raise that for it. A client outside the caller's scope is always answered exactly
like a missing one (404 ``client_not_found``), so a scoped key cannot probe which clients exist elsewhere. Lists
(batches, queues, alert streams, scorecards) keep only what the caller may see (:func:`visible_clients`,
:func:`visible_brokers`, :func:`visible_branches`).

Who holds which account comes from the raw tables (``clients``: branch and broker of each client; ``brokers``:
branch of each broker), read once per worker into a :class:`Directory` and read again when the files change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from service.errors import ApiError, ClientNotFoundError

DIRECTORY_CHECK_S = 10.0  # how often a worker looks whether the raw tables changed


@dataclass(frozen=True)
class Scope:
    """Where a key may look: the whole firm (both None), one branch, or one broker's clients at its branch."""

    branch_id: str | None = None
    broker_id: str | None = None

    @property
    def firm_wide(self) -> bool:
        return self.branch_id is None and self.broker_id is None

    def describe(self) -> str:
        if self.broker_id is not None:
            return f"broker {self.broker_id} (branch {self.branch_id})"
        if self.branch_id is not None:
            return f"branch {self.branch_id}"
        return "firm-wide"


FIRM_WIDE = Scope()


class Scoped(Protocol):
    """Anything carrying a scope and knowing whether it is an admin: an API caller, a page viewer."""

    @property
    def scope(self) -> Scope: ...


class ScopeError(ApiError):
    """403 ``forbidden``: something only a firm-wide key may do (rulesets are the whole firm's policy)."""

    def __init__(self, message: str) -> None:
        super().__init__("forbidden", message)


class ScopeInvalidError(ValueError):
    """A scope that names a branch or broker the firm does not have, or a broker at another branch."""


class Directory:
    """Which branch holds each client's account and which broker serves it, and each broker's branch.

    Built from the raw tables ``clients`` and ``brokers`` (``CRM_HOME/raw``); a worker reads them on first use and
    again when their files change (checked at most every ten seconds). Only scoped callers ever need it.
    """

    def __init__(self, raw_dir: Path) -> None:
        self.raw_dir = raw_dir
        self._lock = threading.Lock()
        self._signature: tuple | None = None
        self._checked = 0.0
        self._clients: dict[str, tuple[str, str]] = {}
        self._brokers: dict[str, str] = {}
        self._branches: frozenset[str] = frozenset()

    @classmethod
    def of(cls, clients: dict[str, tuple[str, str]], brokers: dict[str, str]) -> Directory:
        """A directory from given maps (client → (branch, broker), broker → branch), for tests and tools."""
        directory = cls(Path("/nonexistent"))
        directory._clients, directory._brokers = dict(clients), dict(brokers)
        directory._branches = frozenset(brokers.values()) | {b for b, _ in clients.values()}
        directory._signature, directory._checked = ("given",), float("inf")
        return directory

    def _files(self) -> list[Path]:
        return [self.raw_dir / f"{name}.parquet" for name in ("clients", "brokers", "branches")]

    def _fresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < DIRECTORY_CHECK_S:
            return
        with self._lock:
            if now - self._checked < DIRECTORY_CHECK_S:
                return
            signature = tuple((p.stat().st_mtime_ns, p.stat().st_size) if p.exists() else None
                              for p in self._files())
            if signature != self._signature:
                self._load()
                self._signature = signature
            self._checked = now

    def _load(self) -> None:
        import pyarrow.parquet as pq

        clients_file, brokers_file, branches_file = self._files()
        clients: dict[str, tuple[str, str]] = {}
        brokers: dict[str, str] = {}
        branches: set[str] = set()
        if clients_file.exists():
            t = pq.read_table(clients_file, columns=["client_id", "branch_id", "broker_id"])
            clients = {c: (b, k) for c, b, k in zip(*(t.column(n).to_pylist() for n in t.column_names), strict=True)}
        if brokers_file.exists():
            t = pq.read_table(brokers_file, columns=["broker_id", "branch_id"])
            brokers = dict(zip(t.column("broker_id").to_pylist(), t.column("branch_id").to_pylist(), strict=True))
        if branches_file.exists():
            branches = set(pq.read_table(branches_file, columns=["branch_id"]).column("branch_id").to_pylist())
        self._clients, self._brokers = clients, brokers
        self._branches = frozenset(branches | set(brokers.values()))

    def client(self, client_id: str) -> tuple[str, str] | None:
        """(branch id, broker id) of a client's account, or None for a client the raw tables do not hold."""
        self._fresh()
        return self._clients.get(client_id)

    def broker_branch(self, broker_id: str) -> str | None:
        self._fresh()
        return self._brokers.get(broker_id)

    def has_branch(self, branch_id: str) -> bool:
        self._fresh()
        return branch_id in self._branches

    def resolve(self, branch_id: str | None, broker_id: str | None) -> Scope:
        """The scope a key is created with, checked against the firm: a broker's branch is filled in, and a
        branch and broker that do not belong together are refused (:class:`ScopeInvalidError`)."""
        if broker_id is not None:
            home = self.broker_branch(broker_id)
            if home is None:
                raise ScopeInvalidError(f"no broker {broker_id!r} in the raw tables ({self.raw_dir})")
            if branch_id is not None and branch_id != home:
                raise ScopeInvalidError(f"broker {broker_id} works at branch {home}, not {branch_id}")
            return Scope(home, broker_id)
        if branch_id is not None:
            if not self.has_branch(branch_id):
                raise ScopeInvalidError(f"no branch {branch_id!r} in the raw tables ({self.raw_dir})")
            return Scope(branch_id, None)
        return FIRM_WIDE


# The rule ----------------------------------------------------------------------------------------------------


def may_see_client(who: Scoped, client_id: str, directory: Directory) -> bool:
    """May ``who`` see (decide for, read the audit of, queue, alert about, record an outcome of) this client?"""
    scope = who.scope
    if scope.firm_wide:
        return True
    held = directory.client(client_id)
    if held is None:
        return False
    branch_id, broker_id = held
    return branch_id == scope.branch_id and (scope.broker_id is None or broker_id == scope.broker_id)


def may_see_broker(who: Scoped, broker_id: str, directory: Directory) -> bool:
    """May ``who`` see this broker's scorecard, queue and clients' alerts? Branch scope: the branch's brokers;
    broker scope: only itself."""
    scope = who.scope
    if scope.firm_wide:
        return True
    if scope.broker_id is not None:
        return broker_id == scope.broker_id
    return directory.broker_branch(broker_id) == scope.branch_id


def may_see_branch(who: Scoped, branch_id: str) -> bool:
    """May ``who`` see this branch's figures? Firm-wide callers every branch; scoped callers their own."""
    scope = who.scope
    return scope.firm_wide or branch_id == scope.branch_id


def ensure_client(who: Scoped, client_id: str, directory: Directory) -> None:
    """Raise 404 ``client_not_found`` unless ``who`` may see the client: the answer for a client that does not
    exist, so scope cannot be probed."""
    if not may_see_client(who, client_id, directory):
        raise ClientNotFoundError(client_id)


def ensure_firm_wide(who: Scoped, action: str) -> None:
    """Raise 403 ``forbidden`` unless ``who`` is firm-wide: firm policy (submitting, approving, rejecting and
    activating rulesets) is not a branch's business."""
    if not who.scope.firm_wide:
        raise ScopeError(f"only a firm-wide key may {action}; this key is scoped to {who.scope.describe()}")


def visible_clients(who: Scoped, client_ids: Iterable[str], directory: Directory) -> list[bool]:
    """For each client id in order, whether ``who`` may see it (for batches and lists)."""
    if who.scope.firm_wide:
        return [True for _ in client_ids]
    return [may_see_client(who, c, directory) for c in client_ids]


def visible_brokers(who: Scoped, broker_ids: Iterable[str], directory: Directory) -> list[bool]:
    return [may_see_broker(who, b, directory) for b in broker_ids]


def visible_branches(who: Scoped, branch_ids: Iterable[str]) -> list[bool]:
    return [may_see_branch(who, b) for b in branch_ids]


def may_see(who: Scoped, directory: Directory, *, client_id: str | None = None, broker_id: str | None = None,
            branch_id: str | None = None) -> bool:
    """Whether ``who`` may see this client, broker and branch (every one given): the one question the work queue,
    the outcomes and their pages ask; "may not see" is answered exactly like "does not exist"."""
    return ((client_id is None or may_see_client(who, client_id, directory))
            and (broker_id is None or may_see_broker(who, broker_id, directory))
            and (branch_id is None or may_see_branch(who, branch_id)))
