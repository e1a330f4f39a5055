"""The app with one more route, GET /slow?seconds=, for tests of requests that outlast
gunicorn's timeout. Test-only: gunicorn serves it as "tests.integration.slow_app:create_app()"."""

import time

from flask import Flask, request

import backend


def create_app() -> Flask:
    app = backend.create_app()

    @app.get("/slow")
    def slow() -> dict:
        seconds = float(request.args.get("seconds", "10"))
        time.sleep(seconds)
        return {"slept": seconds}

    return app
