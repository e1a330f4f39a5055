"""Roles over the API with bearer tokens: what each role may call, and whose items
it may touch (object-level authorization, OWASP API1)."""

import pytest

from backend.config_loading import ConfigError
from backend.extensions import db
from tests.conftest import AUTH_KEY, PASSWORD, TEST_DATABASE_URL, bearer, error_body, sign_in

ACTORS = ["owner", "other", "editor", "admin", "key"]
OTHER = "<other>"  # stands for the id of the user who does not own the item

# (method, path, body, expected status for each of ACTORS). The item belongs to "owner",
# a user; "other" is another user; "key" is the default API client.
ITEM_RULES = [
    ("GET", "/items", None, [200, 200, 200, 200, 200]),
    ("GET", "/items/{item}", None, [200, 200, 200, 200, 200]),
    ("GET", "/items/stats", None, [200, 200, 200, 200, 200]),
    ("GET", "/users/{owner}/items", None, [200, 200, 200, 200, 200]),
    ("PATCH", "/items/{item}", {"title": "Changed"}, [200, 403, 200, 200, 200]),
    ("PATCH", "/items/{item}", {"owner_id": OTHER}, [403, 403, 200, 200, 200]),
    ("DELETE", "/items/{item}", None, [204, 403, 204, 204, 204]),
    # Creating an item that "owner" owns: their own, or someone else's for the others.
    ("POST", "/items", {"title": "New", "owner_id": "<owner>"}, [201, 403, 201, 201, 201]),
]

ITEM_CASES = [
    pytest.param(method, path, body, actor, status, id=f"{method} {path} {body or ''} {actor}")
    for method, path, body, statuses in ITEM_RULES
    for actor, status in zip(ACTORS, statuses, strict=True)
]

# Every endpoint of /users and the audit trail, with the scope it needs.
ADMIN_ONLY = [
    ("GET", "/users", None, "users:read"),
    (
        "POST",
        "/users",
        {"email": "new@example.com", "name": "New", "password": PASSWORD},
        "users:write",
    ),
    ("GET", "/users/{owner}", None, "users:read"),
    ("PATCH", "/users/{owner}", {"name": "Renamed"}, "users:write"),
    ("DELETE", "/users/{owner}", None, "users:write"),
    ("GET", "/audit-events", None, "audit:read"),
]


class People:
    """An item owned by a user, and the people who may or may not touch it."""

    def __init__(self, client, auth_headers, make_member):
        self.client, self.key = client, auth_headers
        self.owner, owner_headers = make_member("user")
        self.other, other_headers = make_member("user")
        self.editor, editor_headers = make_member("editor")
        self.admin, admin_headers = make_member("admin")
        self.headers = {
            "owner": owner_headers,
            "other": other_headers,
            "editor": editor_headers,
            "admin": admin_headers,
            "key": auth_headers,
        }
        self.item = client.post("/api/v1/items", json={"title": "Lamp"}, headers=owner_headers).json

    def url(self, path: str) -> str:
        return "/api/v1" + path.format(item=self.item["id"], owner=self.owner["id"])

    def resolve(self, body: dict | None) -> dict | None:
        ids = {OTHER: self.other["id"], "<owner>": self.owner["id"]}
        return None if body is None else {name: ids.get(v, v) for name, v in body.items()}

    def call(self, method: str, path: str, body: dict | None, actor: str):
        return self.client.open(
            self.url(path), method=method, json=self.resolve(body), headers=self.headers[actor]
        )

    def stored_item(self):
        return self.client.get(self.url("/items/{item}"), headers=self.key)

    def item_count(self) -> int:
        return self.client.get("/api/v1/items", headers=self.key).json["total"]


@pytest.fixture
def people(client, auth_headers, make_member):
    return People(client, auth_headers, make_member)


@pytest.mark.parametrize(("method", "path", "body", "actor", "expected"), ITEM_CASES)
def test_item_endpoints_by_role_and_ownership(people, method, path, body, actor, expected):
    before, count = people.item, people.item_count()

    response = people.call(method, path, body, actor)

    assert response.status_code == expected, response.json
    stored = people.stored_item()
    if expected == 403:
        assert error_body(response) == {
            "message": "Only the owner of an item, an editor or an admin can do this."
        }
        assert (stored.status_code, stored.json) == (200, before)
        assert people.item_count() == count
    elif method == "PATCH":
        changes = people.resolve(body)
        assert response.json == {**before, **changes, "updated_at": response.json["updated_at"]}
        assert stored.json == response.json
    elif method == "DELETE":
        assert stored.status_code == 404
    elif method == "POST":
        assert response.json["owner_id"] == people.owner["id"]
        assert people.item_count() == count + 1


@pytest.mark.parametrize("role", ["user", "editor", "admin"])
def test_a_user_who_names_no_owner_creates_their_own_item(client, make_member, role):
    member, headers = make_member(role)

    response = client.post("/api/v1/items", json={"title": "Mine"}, headers=headers)

    assert response.status_code == 201, response.json
    assert response.json["owner_id"] == member["id"]
    assert response.headers["Location"] == f"/api/v1/items/{response.json['id']}"


def test_a_user_may_name_themselves_as_owner(client, make_member):
    member, headers = make_member("user")

    body = {"title": "Mine", "owner_id": member["id"]}
    response = client.post("/api/v1/items", json=body, headers=headers)

    assert (response.status_code, response.json["owner_id"]) == (201, member["id"])


def test_an_editor_creating_for_an_unknown_owner_is_400_naming_owner_id(client, make_member):
    _, headers = make_member("editor")

    response = client.post("/api/v1/items", json={"title": "X", "owner_id": 999}, headers=headers)

    assert response.status_code == 400
    assert response.json["errors"] == {"owner_id": "No user with id 999."}


def test_a_user_moving_someone_elses_item_is_403_not_400(client, make_member, make_item):
    # Refused for whose item it is before the new owner is even looked at.
    item = make_item()
    _, headers = make_member("user")

    response = client.patch(f"/api/v1/items/{item['id']}", json={"owner_id": 999}, headers=headers)

    assert response.status_code == 403


def test_an_api_key_must_name_the_owner(client, auth_headers):
    response = client.post("/api/v1/items", json={"title": "Orphan"}, headers=auth_headers)

    assert response.status_code == 400
    assert response.json["errors"] == {"owner_id": "Required when an API client creates an item."}


@pytest.mark.parametrize("role", ["user", "editor"])
@pytest.mark.parametrize(("method", "path", "body", "scope"), ADMIN_ONLY)
def test_users_and_editors_cannot_reach_users_or_the_audit_trail(
    people, make_member, role, method, path, body, scope
):
    _, headers = make_member(role)

    response = people.client.open(people.url(path), method=method, json=body, headers=headers)

    assert response.status_code == 403
    assert error_body(response) == {
        "message": f"The role {role} lacks the scope {scope}.",
        "missing_scope": scope,
    }
    assert people.client.get(people.url("/users/{owner}"), headers=people.key).json == people.owner


@pytest.mark.parametrize("actor", ["admin", "key"])
def test_admins_and_keys_manage_users(people, actor):
    client, headers = people.client, people.headers[actor]
    new = {"email": "new@example.com", "name": "New", "password": PASSWORD, "role": "editor"}

    created = client.post("/api/v1/users", json=new, headers=headers)
    assert (created.status_code, created.json["role"]) == (201, "editor"), created.json
    path = f"/api/v1/users/{created.json['id']}"
    assert client.get("/api/v1/users", headers=headers).json["total"] == 5
    assert client.get(path, headers=headers).json == created.json
    renamed = client.patch(path, json={"name": "Renamed", "role": "user"}, headers=headers)
    assert (renamed.status_code, renamed.json["name"], renamed.json["role"]) == (
        200,
        "Renamed",
        "user",
    )
    assert client.delete(path, headers=headers).status_code == 204
    assert client.get(path, headers=headers).status_code == 404


def test_admin_reads_the_audit_trail(client, make_member):
    _, headers = make_member("admin")

    assert client.get("/api/v1/audit-events", headers=headers).status_code == 200


def role_of(client, headers) -> str:
    return client.get("/api/v1/me", headers=headers).json["role"]


def test_a_promotion_takes_effect_on_the_same_token_at_the_next_request(client, make_member):
    member, headers = make_member("user")
    _, admin_headers = make_member("admin")
    assert client.get("/api/v1/users", headers=headers).status_code == 403

    path = f"/api/v1/users/{member['id']}"
    response = client.patch(path, json={"role": "admin"}, headers=admin_headers)

    assert (response.status_code, response.json["role"]) == (200, "admin")
    assert client.get("/api/v1/users", headers=headers).status_code == 200
    assert role_of(client, headers) == "admin"


def test_a_demotion_takes_effect_on_the_same_token_at_the_next_request(client, make_member):
    member, headers = make_member("admin")
    _, admin_headers = make_member("admin")
    assert client.get("/api/v1/users", headers=headers).status_code == 200

    path = f"/api/v1/users/{member['id']}"
    response = client.patch(path, json={"role": "user"}, headers=admin_headers)

    assert (response.status_code, response.json["role"]) == (200, "user")
    assert client.get("/api/v1/users", headers=headers).status_code == 403
    assert role_of(client, headers) == "user"


def test_a_demoted_editor_can_no_longer_touch_others_items(client, make_member, make_item):
    member, headers = make_member("editor")
    _, admin_headers = make_member("admin")
    item_path = f"/api/v1/items/{make_item()['id']}"
    assert client.patch(item_path, json={"title": "A"}, headers=headers).status_code == 200

    client.patch(f"/api/v1/users/{member['id']}", json={"role": "user"}, headers=admin_headers)

    assert client.patch(item_path, json={"title": "B"}, headers=headers).status_code == 403
    assert client.get(item_path, headers=admin_headers).json["title"] == "A"


@pytest.mark.parametrize("actor", ["admin", "key"])
def test_blocking_ends_every_session_at_once_and_stops_sign_in(client, people, make_member, actor):
    victim, headers = make_member("editor")
    second = sign_in(client, victim["email"])
    path = f"/api/v1/users/{victim['id']}"

    response = client.patch(path, json={"blocked": True}, headers=people.headers[actor])

    assert (response.status_code, response.json["blocked"]) == (200, True)
    for token in (headers, bearer(second)):
        assert client.get("/api/v1/me", headers=token).status_code == 401
        assert client.get("/api/v1/items", headers=token).status_code == 401
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert refreshed.status_code == 401
    login = client.post("/api/v1/auth/login", json={"email": victim["email"], "password": PASSWORD})
    assert (login.status_code, login.json["message"]) == (403, "This account is blocked.")


def test_unblocking_lets_the_user_sign_in_again_but_not_reuse_old_tokens(people, make_member):
    client = people.client
    victim, headers = make_member("user")
    path = f"/api/v1/users/{victim['id']}"
    client.patch(path, json={"blocked": True}, headers=people.headers["admin"])

    response = client.patch(path, json={"blocked": False}, headers=people.headers["admin"])

    assert (response.status_code, response.json["blocked"]) == (200, False)
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    fresh = bearer(sign_in(client, victim["email"]))
    assert client.get("/api/v1/me", headers=fresh).status_code == 200


def test_a_wrong_password_on_a_blocked_account_is_401_not_403(people, make_member):
    # Only someone who knows the password learns that the account is blocked.
    victim, _ = make_member("user")
    people.client.patch(f"/api/v1/users/{victim['id']}", json={"blocked": True}, headers=people.key)

    body = {"email": victim["email"], "password": "wrong password"}
    assert people.client.post("/api/v1/auth/login", json=body).status_code == 401


@pytest.mark.parametrize(
    "body",
    [{"role": "user"}, {"role": "admin"}, {"blocked": True}, {"name": "X", "role": "editor"}],
)
def test_an_admin_cannot_change_their_own_role_or_block_themselves(client, make_member, body):
    admin, headers = make_member("admin")
    path = f"/api/v1/users/{admin['id']}"

    response = client.patch(path, json=body, headers=headers)

    assert response.status_code == 403
    assert error_body(response) == {
        "message": "Nobody can change their own role or block themselves."
    }
    assert client.get(path, headers=headers).json == admin  # unchanged, and still signed in


def test_an_admin_may_change_their_own_other_fields(client, make_member):
    admin, headers = make_member("admin")

    response = client.patch(f"/api/v1/users/{admin['id']}", json={"name": "Me"}, headers=headers)

    assert (response.status_code, response.json["name"]) == (200, "Me")


@pytest.mark.parametrize("role", ["user", "editor", "admin"])
@pytest.mark.parametrize("body", [{"role": "admin"}, {"blocked": False}])
def test_nobody_changes_their_role_or_block_through_me(client, make_member, role, body):
    member, headers = make_member(role)

    response = client.patch("/api/v1/me", json=body, headers=headers)

    assert response.status_code == 400
    assert response.json["errors"] == {next(iter(body)): "Unknown field."}
    assert client.get("/api/v1/me", headers=headers).json == member


def test_a_user_cannot_promote_themselves_through_users(client, make_member):
    member, headers = make_member("user")

    path = f"/api/v1/users/{member['id']}"
    response = client.patch(path, json={"role": "admin"}, headers=headers)

    assert (response.status_code, response.json["missing_scope"]) == (403, "users:write")
    assert role_of(client, headers) == "user"


@pytest.mark.parametrize("role", ["boss", "Admin", "", " admin"])
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_an_unknown_role_is_400_naming_role(client, auth_headers, make_user, method, role):
    user = make_user()
    body = {"role": role}
    path = f"/api/v1/users/{user['id']}"
    if method == "POST":
        body.update(email="new@example.com", name="New", password=PASSWORD)
        path = "/api/v1/users"

    response = client.open(path, method=method, json=body, headers=auth_headers)

    assert response.status_code == 400
    assert response.json["errors"] == {"role": "Must be one of: user, editor, admin."}
    assert client.get("/api/v1/users", headers=auth_headers).json["items"] == [user]


def test_role_scopes_naming_a_role_not_in_roles_is_refused(make_app):
    scopes = {"user": ["items:read"], "manager": ["users:read"]}

    with pytest.raises(ConfigError, match=r"ROLE_SCOPES names roles \['manager'\]"):
        make_app(ROLE_SCOPES=scopes)


def test_role_scopes_with_an_unknown_scope_is_refused(make_app):
    scopes = {"user": ["items:read"], "editor": ["items:destroy"], "admin": ["*"]}

    with pytest.raises(ConfigError, match=r"ROLE_SCOPES\['editor'\] has unknown scopes"):
        make_app(ROLE_SCOPES=scopes)


def add_member(client, role: str, email: str) -> tuple[dict, dict]:
    body = {"email": email, "name": role, "password": PASSWORD, "role": role}
    user = client.post("/api/v1/users", json=body, headers={"X-AUTH-API-KEY": AUTH_KEY})
    assert user.status_code == 201, user.json
    return user.json, bearer(sign_in(client, email))


SUPPORT_ROLES = {
    "ROLES": ["user", "support", "editor", "admin"],
    "ROLE_SCOPES": {
        "user": ["me:read", "me:write", "items:read", "items:write"],
        "support": ["users:read"],
        "editor": [],
        "admin": ["*"],
    },
}


def test_a_role_added_in_config_gets_its_scopes_and_passes_them_up(make_app):
    client = make_app(**SUPPORT_ROLES).test_client()
    user, user_headers = add_member(client, "user", "user@example.com")
    _, support = add_member(client, "support", "support@example.com")
    _, editor = add_member(client, "editor", "editor@example.com")
    path = f"/api/v1/users/{user['id']}"

    assert client.get("/api/v1/users", headers=support).status_code == 200
    assert client.get(path, headers=support).json == user
    refused = client.patch(path, json={"name": "X"}, headers=support)
    assert (refused.status_code, refused.json["missing_scope"]) == (403, "users:write")
    assert client.get("/api/v1/users", headers=editor).status_code == 200  # from support
    assert client.get("/api/v1/users", headers=user_headers).status_code == 403


def test_object_rules_follow_the_configured_ranks(make_app):
    # "support" ranks below "editor": it may not touch others' items.
    client = make_app(**SUPPORT_ROLES).test_client()
    _, owner = add_member(client, "user", "user@example.com")
    _, support = add_member(client, "support", "support@example.com")
    _, editor = add_member(client, "editor", "editor@example.com")
    item = client.post("/api/v1/items", json={"title": "Lamp"}, headers=owner).json
    path = f"/api/v1/items/{item['id']}"

    assert client.patch(path, json={"title": "S"}, headers=support).status_code == 403
    assert client.patch(path, json={"title": "E"}, headers=editor).status_code == 200


@pytest.fixture
def shared_database(tmp_path):
    """Config for apps that share one database: PostgreSQL's, or a SQLite file."""
    if TEST_DATABASE_URL:
        return {}
    return {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/shared.db"}


def test_a_role_removed_from_config_grants_nothing(make_app, shared_database):
    before = make_app(**shared_database)
    with before.app_context():
        db.create_all()
    client = before.test_client()
    _, headers = add_member(client, "editor", "editor@example.com")
    assert client.get("/api/v1/items", headers=headers).status_code == 200

    scopes = {"user": ["me:read", "me:write", "items:read", "items:write"], "admin": ["*"]}
    after = make_app(ROLES=["user", "admin"], ROLE_SCOPES=scopes, **shared_database)
    response = after.test_client().get("/api/v1/items", headers=headers)

    assert response.status_code == 403
    assert error_body(response) == {
        "message": "The role editor lacks the scope items:read.",
        "missing_scope": "items:read",
    }
