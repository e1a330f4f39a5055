"""The OpenAPI document rebar generates from the handlers and schemas."""


def test_document_lists_every_endpoint_with_id_bounds(client):
    document = client.get("/api/v1/openapi.json").json

    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/api/v1/users",
        "/api/v1/users/{user_id}",
        "/api/v1/users/{user_id}/items",
        "/api/v1/items",
        "/api/v1/items/{item_id}",
    }
    [user_id] = document["paths"]["/api/v1/users/{user_id}"]["parameters"]
    assert user_id["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
