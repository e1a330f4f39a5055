"""The /items endpoints and a user's items: each endpoint with each status it can answer."""

import pytest


def test_create_item_returns_201_with_location(client, auth_headers, make_user):
    owner = make_user()
    body = {"title": "Lamp", "description": "Brass", "owner_id": owner["id"]}
    response = client.post("/api/v1/items", json=body, headers=auth_headers)

    assert response.status_code == 201
    item = response.json
    assert response.headers["Location"] == f"/api/v1/items/{item['id']}"
    assert (item["title"], item["description"], item["owner_id"]) == ("Lamp", "Brass", owner["id"])


def test_create_item_without_description_stores_null(client, auth_headers, make_user):
    body = {"title": "Lamp", "owner_id": make_user()["id"]}
    response = client.post("/api/v1/items", json=body, headers=auth_headers)

    assert response.status_code == 201
    assert response.json["description"] is None


def test_create_item_for_unknown_owner_is_400_naming_owner_id(client, auth_headers):
    response = client.post(
        "/api/v1/items", json={"title": "Lamp", "owner_id": 999}, headers=auth_headers
    )

    assert response.status_code == 400
    assert response.json["errors"] == {"owner_id": "No user with id 999."}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"owner_id": 1}, "title"),
        ({"title": "", "owner_id": 1}, "title"),
        ({"title": "t" * 201, "owner_id": 1}, "title"),
        ({"title": "Lamp", "description": "d" * 2001, "owner_id": 1}, "description"),
        ({"title": "Lamp"}, "owner_id"),
        ({"title": "Lamp", "owner_id": "1"}, "owner_id"),
        ({"title": "Lamp", "owner_id": 2**31}, "owner_id"),
        ({"title": "Lamp", "owner_id": 1, "id": 5}, "id"),
    ],
)
def test_create_item_with_invalid_field_is_400_naming_it(client, auth_headers, body, field):
    response = client.post("/api/v1/items", json=body, headers=auth_headers)

    assert response.status_code == 400
    assert list(response.json["errors"]) == [field]


def test_list_items(client, auth_headers, make_item):
    first, second = make_item(), make_item()
    response = client.get("/api/v1/items?limit=1&offset=1", headers=auth_headers)

    assert response.status_code == 200
    assert response.json == {"items": [second], "total": 2, "limit": 1, "offset": 1}
    assert first != second


def test_list_items_with_bad_paging_is_400(client, auth_headers):
    assert client.get("/api/v1/items?limit=500", headers=auth_headers).status_code == 400


def test_list_user_items_shows_only_that_users_items(client, auth_headers, make_user, make_item):
    owner, other = make_user(), make_user()
    mine = make_item(owner_id=owner["id"])
    make_item(owner_id=other["id"])
    response = client.get(f"/api/v1/users/{owner['id']}/items", headers=auth_headers)

    assert response.status_code == 200
    assert response.json == {"items": [mine], "total": 1, "limit": 20, "offset": 0}


def test_list_items_of_unknown_user_is_404(client, auth_headers):
    assert client.get("/api/v1/users/999/items", headers=auth_headers).status_code == 404


def test_get_item(client, auth_headers, make_item):
    item = make_item()
    response = client.get(f"/api/v1/items/{item['id']}", headers=auth_headers)

    assert response.status_code == 200
    assert response.json == item


def test_get_unknown_item_is_404(client, auth_headers):
    response = client.get("/api/v1/items/999", headers=auth_headers)

    assert response.status_code == 404
    assert response.json["message"] == "Item 999 not found."


def test_update_item_changes_given_fields_and_updated_at(client, auth_headers, make_item):
    item = make_item(title="Old")
    response = client.patch(
        f"/api/v1/items/{item['id']}",
        json={"title": "New", "description": None},
        headers=auth_headers,
    )

    assert response.status_code == 200
    assert (response.json["title"], response.json["description"]) == ("New", None)
    assert response.json["created_at"] == item["created_at"]
    assert response.json["updated_at"] >= item["updated_at"]


def test_update_item_can_move_it_to_another_owner(client, auth_headers, make_item, make_user):
    item, new_owner = make_item(), make_user()
    response = client.patch(
        f"/api/v1/items/{item['id']}", json={"owner_id": new_owner["id"]}, headers=auth_headers
    )

    assert response.status_code == 200
    assert response.json["owner_id"] == new_owner["id"]


def test_update_item_to_unknown_owner_is_400_and_keeps_data(client, auth_headers, make_item):
    item = make_item()
    response = client.patch(
        f"/api/v1/items/{item['id']}", json={"owner_id": 999}, headers=auth_headers
    )

    assert response.status_code == 400
    assert list(response.json["errors"]) == ["owner_id"]
    assert client.get(f"/api/v1/items/{item['id']}", headers=auth_headers).json == item


def test_update_item_with_null_title_is_400(client, auth_headers, make_item):
    item = make_item()
    response = client.patch(
        f"/api/v1/items/{item['id']}", json={"title": None}, headers=auth_headers
    )

    assert response.status_code == 400


def test_update_unknown_item_is_404(client, auth_headers):
    response = client.patch("/api/v1/items/999", json={"title": "X"}, headers=auth_headers)

    assert response.status_code == 404


def test_delete_item_is_204_then_404(client, auth_headers, make_item):
    item = make_item()

    assert client.delete(f"/api/v1/items/{item['id']}", headers=auth_headers).status_code == 204
    assert client.get(f"/api/v1/items/{item['id']}", headers=auth_headers).status_code == 404


def test_delete_unknown_item_is_404(client, auth_headers):
    assert client.delete("/api/v1/items/999", headers=auth_headers).status_code == 404


def test_deleting_a_user_deletes_their_items(client, auth_headers, make_user, make_item):
    owner, other = make_user(), make_user()
    mine = make_item(owner_id=owner["id"])
    theirs = make_item(owner_id=other["id"])

    assert client.delete(f"/api/v1/users/{owner['id']}", headers=auth_headers).status_code == 204
    assert client.get(f"/api/v1/items/{mine['id']}", headers=auth_headers).status_code == 404
    assert client.get("/api/v1/items", headers=auth_headers).json["items"] == [theirs]
