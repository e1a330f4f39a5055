"""`flask scaffold NAME [FIELD ...]`: a new feature folder, its tests and its FEATURES line.

The files come from templates/, which read like the example features in
backend/features/items: what they generate is the code to keep and change.
"""

from flask import Flask

from backend.scaffold.cli import scaffold_command


def init_scaffold(app: Flask) -> None:
    app.cli.add_command(scaffold_command)
