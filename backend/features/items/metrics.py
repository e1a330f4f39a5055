"""The items feature's own Prometheus metrics, served at GET /metrics (backend/metrics.py).

Defined once per process, when the handlers import this module; count where the event
happens. A metric's labels must take few values (never an id, an email or a path).
"""

from prometheus_client import Counter

# Exported as items_created_total.
ITEMS_CREATED = Counter("items_created", "Items created through the API.")
