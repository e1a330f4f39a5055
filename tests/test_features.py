"""FEATURES in backend/app.py decides what is served: a line removed is a feature gone."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backend import app as factory
from backend.config_loading import ConfigError
from tests.conftest import AUTH_KEY, api_operations, make_config

# The registry belongs to the process, and this one has every feature imported:
# an app with fewer features is built in a fresh interpreter. It answers a GET of
# each URL given, and lists the paths its document describes.
SERVE_FEATURES = """
import json, sys

import backend.app

features, config, urls = json.loads(sys.argv[1])
backend.app.FEATURES = tuple(features)
from backend import create_app
from backend.extensions import db

app = create_app(config)
with app.app_context():
    db.create_all()
client = app.test_client()
headers = {app.config["AUTH_HEADER"]: config["AUTH_KEY"]}
answers = {}
for url in urls:
    response = client.get(url, headers=headers)
    answers[url] = [response.status_code, response.is_json]
answers["documented"] = sorted(client.get("/api/v1/openapi.json").json["paths"])
print(json.dumps(answers))
"""


def serve(features: list[str], urls: list[str]) -> dict:
    config = {
        "ENVIRONMENT": "testing",
        "SQLALCHEMY_DATABASE_URI": "sqlite://",
        "AUTH_KEY": AUTH_KEY,
        "API_CLIENTS": {},
        "LOG_FILE": None,
    }
    result = subprocess.run(
        [sys.executable, "-c", SERVE_FEATURES, json.dumps([features, config, urls])],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_a_feature_removed_from_the_list_is_not_served():
    removed, *kept = factory.FEATURES
    operations = api_operations()
    # GETs of paths without parameters: with one, a 404 could mean a missing row.
    plain = [op for op in operations if op.method == "GET" and "<" not in op.rule]
    gone = [op.url for op in plain if op.feature == removed]
    served = [op.url for op in plain if op.feature != removed and not op.users_only]
    # A person's own account answers an API key with 403: served, but not to keys.
    for_people = [op.url for op in plain if op.feature != removed and op.users_only]

    answers = serve(kept, gone + served + for_people)

    for url in gone:
        assert answers[url] == [404, True], url
    for url in served:
        assert answers[url] == [200, True], url
    for url in for_people:
        assert answers[url] == [403, True], url
    assert answers["documented"] == sorted(
        {op.openapi_path for op in operations if op.feature != removed}
    )


def test_handlers_of_an_unlisted_feature_are_refused(monkeypatch):
    # This process has imported every feature's handlers (tests/conftest.py).
    *listed, unlisted = factory.FEATURES
    monkeypatch.setattr(factory, "FEATURES", tuple(listed))

    with pytest.raises(ConfigError, match=rf"backend\.features\.{unlisted}\.handlers registered"):
        factory.create_app(make_config())
