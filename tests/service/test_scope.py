"""Who may see which client: every client-facing endpoint and page × firm-wide, branch-scoped and broker-scoped
keys × a client of the key's broker, another broker's client at the same branch, and another branch's client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from service.db import make_engine
from service.keys import KeyScopeError, Role, check_role_scope, create_key
from service.scope import FIRM_WIDE, Directory, Scope, ScopeInvalidError
from tests.service.conftest import Api

SCOPES = ("firm", "branch", "broker")
CLIENTS = ("own", "same_branch", "other_branch")
# Which clients each kind of key sees.
SEES = {"firm": set(CLIENTS), "branch": {"own", "same_branch"}, "broker": {"own"}}


@dataclass
class World:
    clients: dict[str, str]  # kind of client → client id
    branch: str
    broker: str
    keys: dict[tuple[Role, str], str]  # (role, scope kind) → key
    other_branch: str


@pytest.fixture(scope="module")
def world(api: Api) -> Iterator[World]:
    real = Directory(api.settings.raw_dir)
    real.client(api.client_ids[0])  # read the raw tables
    clients, brokers = dict(real._clients), dict(real._brokers)
    own = api.client_ids[0]
    branch, broker = clients[own]
    same_branch = next((c for c in api.client_ids if c != own and clients.get(c, ("", ""))[0] == branch), None)
    assert same_branch is not None, "the test world has no branch with two clients"
    if clients[same_branch][1] == broker:
        # The small test world has one broker per branch: the second client is served by a second broker of the
        # same branch (the directory is the runtime's one seam to who-serves-whom; the rule is what is tested).
        brokers["K99999"] = branch
        clients[same_branch] = (branch, "K99999")
    other_branch = next(c for c in api.client_ids if clients.get(c, (branch, ""))[0] != branch)
    runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
    served = runtime.directory
    runtime.directory = Directory.of(clients, brokers)
    scopes = {"firm": FIRM_WIDE, "branch": Scope(branch), "broker": Scope(branch, broker)}
    engine = make_engine(api.settings.service_database_url)
    keys = {(role, kind): create_key(engine, role, f"{role.value}-{kind}", scope)[1]
            for role in (Role.FRONT_OFFICE, Role.COMPLIANCE) for kind, scope in scopes.items()}
    keys[(Role.BRANCH_MANAGER, "branch")] = create_key(engine, Role.BRANCH_MANAGER, "manager", scopes["branch"])[1]
    engine.dispose()
    yield World({"own": own, "same_branch": same_branch, "other_branch": other_branch}, branch, broker, keys,
                clients[other_branch][0])
    runtime.directory = served


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def not_found_like_a_missing_client(api: Api, response, client_id: str, headers: dict) -> None:
    """The answer for an out-of-scope client is the answer for a client that does not exist."""
    missing = api.client.post("/v1/decisions", json={"client_id": "C9999999"}, headers=headers)
    assert response.status_code == missing.status_code == 404
    assert response.json() == {"error": {**missing.json()["error"],
                                         "message": missing.json()["error"]["message"].replace("C9999999", client_id)}}


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("client", CLIENTS)
def test_decisions_are_scoped(api: Api, world: World, scope: str, client: str) -> None:
    client_id = world.clients[client]
    headers = bearer(world.keys[(Role.FRONT_OFFICE, scope)])
    single = api.client.post("/v1/decisions", json={"client_id": client_id}, headers=headers)
    batch = api.client.post("/v1/decisions/batch", json={"client_ids": [client_id, world.clients["own"]]},
                            headers=headers).json()["decisions"]
    assert "decision" in batch[1]  # the key's own client is always there, in order
    if client in SEES[scope]:
        assert single.status_code == 200 and single.json()["client_id"] == client_id
        assert batch[0]["decision"]["client_id"] == client_id
    else:
        not_found_like_a_missing_client(api, single, client_id, headers)
        assert batch[0]["error"]["code"] == "client_not_found" and "decision" not in batch[0]


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("client", CLIENTS)
def test_audit_reads_and_replays_are_scoped(api: Api, world: World, scope: str, client: str) -> None:
    decided = api.client.post("/v1/decisions", json={"client_id": world.clients[client]},
                              headers=api.headers(Role.FRONT_OFFICE)).json()["decision_id"]
    time.sleep(0.05)
    headers = bearer(world.keys[(Role.COMPLIANCE, scope)])
    read = api.client.get(f"/v1/decisions/{decided}", headers=headers)
    replay = api.client.post(f"/v1/decisions/{decided}/replay", headers=headers)
    if client in SEES[scope]:
        assert read.status_code == 200 and read.json()["client_id"] == world.clients[client]
        assert replay.status_code == 200 and replay.json()["identical"]
    else:
        missing = api.client.get("/v1/decisions/0000", headers=headers).json()["error"]
        for response in (read, replay):
            assert response.status_code == 404
            assert response.json()["error"] == {**missing, "message": missing["message"].replace("0000", decided)}


def sign_in(client: TestClient, key: str) -> None:
    client.cookies.clear()
    response = client.post("/ui/login", data={"key": key}, follow_redirects=False)
    assert response.status_code == 303, response.text


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("client", CLIENTS)
def test_the_client_page_is_scoped(api: Api, world: World, scope: str, client: str) -> None:
    sign_in(api.client, world.keys[(Role.FRONT_OFFICE, scope)])
    client_id = world.clients[client]
    page = api.client.get(f"/ui/clients?client_id={client_id}")
    missing = api.client.get("/ui/clients?client_id=C9999999")
    if client in SEES[scope]:
        assert page.status_code == 200 and 'id="tier"' in page.text
    else:
        assert page.status_code == missing.status_code == 404 and 'id="tier"' not in page.text
        assert f"No client {client_id} in the feature store" in page.text


def test_managers_pages_belong_to_branch_managers_and_show_their_branch(api: Api, world: World) -> None:
    directory = Directory(api.settings.raw_dir)
    directory.client(world.clients["own"])  # the real brokers, as the scorecards list them
    sign_in(api.client, world.keys[(Role.FRONT_OFFICE, "firm")])
    for page in ("/ui/managers/brokers", "/ui/managers/branches"):
        assert api.client.get(page).status_code == 403  # front office lost the managers' pages

    sign_in(api.client, world.keys[(Role.BRANCH_MANAGER, "branch")])
    brokers = api.client.get("/ui/managers/brokers")
    assert brokers.status_code == 200
    shown = {b for b in directory._brokers if f">{b}<" in brokers.text}
    assert world.broker in shown and all(directory.broker_branch(b) == world.branch for b in shown)
    branches = api.client.get("/ui/managers/branches")
    assert branches.status_code == 200 and "1 branches" in branches.text and world.other_branch not in branches.text
    for page in ("/ui/clients", "/ui/compliance", "/ui/models"):
        assert api.client.get(page).status_code == 403

    sign_in(api.client, api.keys[Role.ADMIN])  # the whole firm
    everyone = api.client.get("/ui/managers/brokers").text
    assert any(f">{b}<" in everyone for b in directory._brokers if directory.broker_branch(b) != world.branch)


def test_a_scoped_compliance_key_may_not_change_firm_policy(api: Api, world: World) -> None:
    response = api.client.post("/v1/rulesets/0000/approve", json={"note": "x"},
                               headers=bearer(world.keys[(Role.COMPLIANCE, "branch")]))
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert api.client.get("/v1/rulesets", headers=bearer(world.keys[(Role.COMPLIANCE, "branch")])).status_code == 200


def test_key_scopes_are_checked_against_the_firm(api: Api, world: World) -> None:
    directory = Directory(api.settings.raw_dir)
    assert directory.resolve(None, world.broker) == Scope(world.branch, world.broker)  # the broker's branch
    for branch, broker in (("B999", None), (None, "K99998"), (world.other_branch, world.broker)):
        with pytest.raises(ScopeInvalidError):
            directory.resolve(branch, broker)
    for role, scope in ((Role.ADMIN, Scope(world.branch)), (Role.BRANCH_MANAGER, FIRM_WIDE),
                        (Role.BRANCH_MANAGER, Scope(world.branch, world.broker))):
        with pytest.raises(KeyScopeError):
            check_role_scope(role, scope)
