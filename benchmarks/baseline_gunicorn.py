"""gunicorn settings of the baseline: the template's worker model, without its extras.

Given with `--config`, so gunicorn does not pick up the template's gunicorn.conf.py
from the project root. Like the template: sync workers and the app loaded in the
master. Unlike it: no worker recycling (max_requests) and no scheduler hooks.
"""

preload_app = True
accesslog = None
timeout = 30
