"""Writes that race each other across gunicorn workers: never a 500, never a false answer.

Each round creates a user with an item, then sends at once: two DELETEs of the user,
a PATCH of the user, new items for the user, a PATCH and a DELETE of their item, and
a move of another user's item to them. Whatever order the workers run them in, every
answer must be a success or a clear 4xx, and each answer must be true of what the
database ends up holding.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.servers import call

pytestmark = pytest.mark.integration

ROUNDS = 25
SECONDS = 40


def test_racing_writes_never_answer_500_and_never_lie(database_url, start_gunicorn):
    server = start_gunicorn(workers=3, DATABASE_URL=database_url)
    api = server.url + "/api/v1"
    statuses: list[int] = []
    deadline = time.monotonic() + SECONDS

    with ThreadPoolExecutor(max_workers=10) as pool:
        for round_number in range(ROUNDS):
            if time.monotonic() > deadline:
                break
            user = create(api + "/users", new_user(f"doomed{round_number}"))
            other = create(api + "/users", new_user(f"other{round_number}"))
            item = create(api + "/items", {"title": "Mine", "owner_id": user["id"]})
            moved = create(api + "/items", {"title": "Moving", "owner_id": other["id"]})

            requests = [
                (f"{api}/users/{user['id']}", "DELETE", None),
                (f"{api}/users/{user['id']}", "DELETE", None),
                (f"{api}/users/{user['id']}", "PATCH", {"name": "Renamed"}),
                (f"{api}/items", "POST", {"title": "New", "owner_id": user["id"]}),
                (f"{api}/items", "POST", {"title": "New", "owner_id": user["id"]}),
                (f"{api}/items/{item['id']}", "PATCH", {"title": "Changed"}),
                (f"{api}/items/{item['id']}", "DELETE", None),
                (f"{api}/items/{moved['id']}", "PATCH", {"owner_id": user["id"]}),
            ]
            answers = list(pool.map(lambda request: call(*request)[:2], requests))
            statuses += [status for status, _ in answers]
            user_deletes, rename, created, item_patch, item_delete, move = (
                answers[0:2],
                answers[2],
                answers[3:5],
                answers[5],
                answers[6],
                answers[7],
            )

            assert sorted(status for status, _ in user_deletes) == [204, 404], answers
            assert rename[0] in (200, 404), rename
            assert item_patch[0] in (200, 404), item_patch
            assert item_delete[0] in (204, 404), item_delete
            for status, body in created:
                assert status in (201, 400, 409), (status, body)
                # Created for a user now deleted: the database removed it with them.
                if status == 201:
                    assert call(f"{api}/items/{body['id']}")[0] == 404
            # A move the client was told failed did not happen; one that succeeded went
            # down with the user it moved to.
            after_move = call(f"{api}/items/{moved['id']}")
            if move[0] == 200:
                assert after_move[0] == 404, (move, after_move)
            else:
                assert move[0] in (400, 404, 409), move
                assert after_move[:2][0] == 200 and after_move[1]["owner_id"] == other["id"]
            assert call(f"{api}/users/{user['id']}")[0] == 404

    assert statuses and all(status < 500 for status in statuses), statuses
    server.stop()
    assert "SAWarning" not in server.stderr()
    assert "Traceback" not in server.stderr()


def new_user(name: str) -> dict:
    return {"email": f"{name}@example.com", "name": name, "password": "correct horse"}


def create(url: str, body: dict) -> dict:
    status, created, _ = call(url, "POST", body)
    assert status == 201, created
    return created
