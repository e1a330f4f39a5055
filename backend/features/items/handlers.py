"""The /items endpoints, and the items of one user."""

from flask import request
from flask_rebar import errors, get_validated_args, get_validated_body, messages
from sqlalchemy import func, select

from backend.api import registry
from backend.auth import current_caller, requires_scope, role_at_least
from backend.caching import cached_response, generation, invalidate
from backend.database import delete_or_404
from backend.errors import with_errors
from backend.extensions import cache, db
from backend.features.items.metrics import ITEMS_CREATED
from backend.features.items.models import Item
from backend.features.items.schemas import (
    CreateItemSchema,
    ItemPageSchema,
    ItemSchema,
    ItemStatsSchema,
    UpdateItemSchema,
)
from backend.features.users.models import User
from backend.features.users.signals import user_deleted
from backend.pagination import PageQuerySchema, paginate


def _ensure_owner_exists(owner_id: int) -> None:
    # Answered like any other invalid field, instead of a foreign-key error.
    if db.session.get(User, owner_id) is None:
        raise errors.BadRequest(
            messages.body_validation_failed,
            {"errors": {"owner_id": f"No user with id {owner_id}."}},
        )


def _owner_for_new_item(owner_id: int | None) -> int:
    """A user's items are their own; editors and admins, and API clients, name the owner."""
    caller = current_caller()
    if owner_id is None:
        if caller.user_id is None:
            raise errors.BadRequest(
                messages.body_validation_failed,
                {"errors": {"owner_id": "Required when an API client creates an item."}},
            )
        return caller.user_id
    _ensure_may_act_for(owner_id)
    _ensure_owner_exists(owner_id)
    return owner_id


def _ensure_may_act_for(owner_id: int) -> None:
    # Object-level authorization (OWASP API1): the scope says "items", not whose.
    caller = current_caller()
    if caller.user_id is not None and owner_id != caller.user_id and not role_at_least("editor"):
        raise errors.Forbidden("Only the owner of an item, an editor or an admin can do this.")


@cache.memoize()
def item_stats(items_generation: str) -> dict[str, int]:
    """Counted once per generation of the items: any write to an item starts a new one."""
    statement = select(func.count(Item.id), func.count(func.distinct(Item.owner_id)))
    items, owners = db.session.execute(statement).one()
    return {"items": items, "owners": owners}


@user_deleted.connect
def forget_items_of_deleted_user(user_id: int) -> None:
    """The database deleted the user's items with them (ON DELETE CASCADE)."""
    invalidate("items")


@registry.handles(
    rule="/items",
    method="GET",
    query_string_schema=PageQuerySchema(),
    response_body_schema=with_errors({200: ItemPageSchema()}),
    authenticators=requires_scope("items:read"),
    tags=["items"],
)
@cached_response("items")
def list_items() -> dict:
    """List items, oldest first."""
    return paginate(select(Item).order_by(Item.id), **get_validated_args())


@registry.handles(
    rule="/items/stats",
    method="GET",
    response_body_schema=with_errors({200: ItemStatsSchema()}),
    authenticators=requires_scope("items:read"),
    tags=["items"],
)
def get_item_stats() -> dict[str, int]:
    """Count items and their owners (memoized)."""
    return item_stats(generation("items"))


@registry.handles(
    rule="/users/<id:user_id>/items",
    method="GET",
    query_string_schema=PageQuerySchema(),
    response_body_schema=with_errors({200: ItemPageSchema()}, 404),
    authenticators=requires_scope("items:read"),
    tags=["items"],
)
def list_user_items(user_id: int) -> dict:
    """List the items one user owns, oldest first."""
    db.get_or_404(User, user_id, description=f"User {user_id} not found.")
    statement = select(Item).where(Item.owner_id == user_id).order_by(Item.id)
    return paginate(statement, **get_validated_args())


@registry.handles(
    rule="/items",
    method="POST",
    request_body_schema=CreateItemSchema(),
    response_body_schema=with_errors({201: ItemSchema()}, 413),
    authenticators=requires_scope("items:write"),
    tags=["items"],
)
def create_item() -> tuple[Item, int, dict]:
    """Create an item: a user's own, or, for others, any existing user's."""
    body = get_validated_body()
    body["owner_id"] = _owner_for_new_item(body.get("owner_id"))
    item = Item(**body)
    db.session.add(item)
    db.session.commit()
    ITEMS_CREATED.inc()
    invalidate("items")
    return item, 201, {"Location": f"{request.path}/{item.id}"}


@registry.handles(
    rule="/items/<id:item_id>",
    method="GET",
    response_body_schema=with_errors({200: ItemSchema()}, 404),
    authenticators=requires_scope("items:read"),
    tags=["items"],
)
@cached_response("items")
def get_item(item_id: int) -> Item:
    """Get one item."""
    return db.get_or_404(Item, item_id, description=f"Item {item_id} not found.")


@registry.handles(
    rule="/items/<id:item_id>",
    method="PATCH",
    request_body_schema=UpdateItemSchema(),
    response_body_schema=with_errors({200: ItemSchema()}, 404, 413),
    authenticators=requires_scope("items:write"),
    tags=["items"],
)
def update_item(item_id: int) -> Item:
    """Change some of an item's fields."""
    item = db.get_or_404(Item, item_id, description=f"Item {item_id} not found.")
    _ensure_may_act_for(item.owner_id)
    body = get_validated_body()
    if "owner_id" in body:
        _ensure_may_act_for(body["owner_id"])
        _ensure_owner_exists(body["owner_id"])
    for field, value in body.items():
        setattr(item, field, value)
    db.session.commit()
    invalidate("items")
    return item


@registry.handles(
    rule="/items/<id:item_id>",
    method="DELETE",
    response_body_schema=with_errors({204: None}, 404),
    authenticators=requires_scope("items:write"),
    tags=["items"],
)
def delete_item(item_id: int) -> tuple[None, int]:
    """Delete an item."""
    item = db.get_or_404(Item, item_id, description=f"Item {item_id} not found.")
    _ensure_may_act_for(item.owner_id)
    delete_or_404(Item, item_id, f"Item {item_id} not found.")
    invalidate("items")
    return None, 204
