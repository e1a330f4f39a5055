"""GET /health, for load balancers: no key, and honest about the database."""


def test_health_is_200_with_database_check_and_needs_no_key(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok"}


def test_health_is_503_when_database_is_unreachable(make_app):
    client = make_app(SQLALCHEMY_DATABASE_URI="postgresql://postgres@127.0.0.1:1/x").test_client()
    response = client.get("/health")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json == {
        "message": "The database is unreachable.",
        "status": "unavailable",
        "database": "unreachable",
    }
