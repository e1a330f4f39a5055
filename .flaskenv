# Read by the `flask` command (python-dotenv): `flask run`, `flask db ...` work from the repo root.
FLASK_APP=backend
FLASK_DEBUG=1
