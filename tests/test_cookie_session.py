"""Flask's cookie session still works where a handler uses it, and costs API calls nothing."""

from flask import session


def add_session_routes(app):
    @app.post("/remember/<word>")
    def remember(word: str) -> dict:
        session["word"] = word
        return {}

    @app.get("/recall")
    def recall() -> dict:
        return {"word": session.get("word")}


def test_an_api_call_gets_no_session_cookie(client, auth_headers):
    response = client.get("/api/v1/users", headers=auth_headers)

    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")


def test_a_session_written_by_a_handler_is_signed_and_read_back(make_app):
    app = make_app()
    add_session_routes(app)
    client = app.test_client()

    assert client.get("/recall").json == {"word": None}
    written = client.post("/remember/hello")
    assert "HttpOnly" in written.headers["Set-Cookie"]
    assert client.get("/recall").json == {"word": "hello"}


def test_a_forged_session_cookie_is_ignored(make_app):
    app = make_app()
    add_session_routes(app)
    client = app.test_client()
    client.post("/remember/hello")
    value = client.get_cookie("session").value
    client.set_cookie("session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))

    assert client.get("/recall").json == {"word": None}


def test_the_signature_is_checked_only_for_requests_that_send_a_cookie(make_app, monkeypatch):
    app = make_app()
    add_session_routes(app)
    client = app.test_client()
    client.post("/remember/hello")
    built = []
    make_serializer = app.session_interface.get_signing_serializer
    monkeypatch.setattr(
        app.session_interface,
        "get_signing_serializer",
        lambda app: built.append(1) or make_serializer(app),
    )

    app.test_client().get("/recall")
    assert built == []
    assert client.get("/recall").json == {"word": "hello"}
    assert built == [1]
