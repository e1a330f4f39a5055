"""The API: one handler registry under /api/v1, its API-key authenticator, and its OpenAPI document.

Every feature registers its handlers here, with `@registry.handles(...)`; `create_app`
imports each listed feature's handlers module and binds rebar. The converters below
say how the API's own types (ids, emails, storable strings, keys with scopes) appear
in the document rebar generates.
"""

from collections.abc import Iterator
from typing import Any

from flask import current_app
from flask_rebar import SwaggerV3Generator
from flask_rebar.authenticators import Authenticator
from flask_rebar.rebar import PathDefinition
from flask_rebar.swagger_generation import swagger_words as sw
from flask_rebar.swagger_generation.authenticator_to_swagger import (
    AuthenticatorConverter,
    AuthenticatorConverterRegistry,
)
from flask_rebar.swagger_generation.marshmallow_to_swagger import (
    UNSET,
    LengthConverter,
    StringConverter,
    query_string_converter_registry,
    request_body_converter_registry,
    response_converter_registry,
    sets_swagger_attr,
)
from marshmallow import fields, validate

from backend.auth import ScopeAuthenticator
from backend.errors import ErrorSchema
from backend.extensions import rebar
from backend.fields import SettingChoice
from backend.url_converters import IdConverter


class StorableStringConverter(StringConverter):
    """Says what backend/http_rules.py enforces of bodies and queries: no NUL character."""

    MARSHMALLOW_TYPE = fields.String

    @sets_swagger_attr(sw.pattern)
    def get_pattern(self, obj: fields.String, context: object) -> str:
        return "^[^\\u0000]*$"


class EmailConverter(StringConverter):
    """Says `format: email`, so clients and contract tests send real addresses, and
    what backend/fields.py adds: no spaces or controls, a top-level domain of letters."""

    MARSHMALLOW_TYPE = fields.Email

    @sets_swagger_attr(sw.format_)
    def get_format(self, obj: fields.Email, context: object) -> str:
        return "email"

    @sets_swagger_attr(sw.pattern)
    def get_pattern(self, obj: fields.Email, context: object) -> str:
        return "^[^\\s\\u0000-\\u001f]+@[^\\s\\u0000-\\u001f]+\\.[A-Za-z]{2,}$"


class SettingChoiceConverter(StringConverter):
    """Lists the app's configured values (ROLES, say) as the field's enum."""

    MARSHMALLOW_TYPE = SettingChoice  # type: ignore[assignment]

    @sets_swagger_attr(sw.enum)
    def get_enum(self, obj: SettingChoice, context: object) -> list[str]:
        return list(current_app.config[obj.setting])


class NullableLengthConverter(LengthConverter):
    """Documents the length limits of a string that may also be null: rebar gives them
    only where the type is exactly "string", not ["string", "null"]."""

    @sets_swagger_attr(sw.min_length)
    def get_minimum_length(self, obj: validate.Length, context: Any) -> object:
        return obj.min if obj.min is not None and _is_string(context) else UNSET

    @sets_swagger_attr(sw.max_length)
    def get_maximum_length(self, obj: validate.Length, context: Any) -> object:
        return obj.max if obj.max is not None and _is_string(context) else UNSET


def _is_string(context: Any) -> bool:
    type_ = context.memo[sw.type_]
    return type_ == sw.string or (isinstance(type_, list) and sw.string in type_)


BEARER_SCHEME = "bearerAuth"


class ScopeConverter(AuthenticatorConverter):
    """Documents both ways in, the key's header and bearer tokens, and per operation the
    scope it needs: either one will do (OpenAPI 3.1 lets schemes of any type list scopes)."""

    AUTHENTICATOR_TYPE = ScopeAuthenticator

    def get_security_schemes(self, obj: Authenticator, context: object = None) -> dict:
        key = _scoped(obj)
        return {
            key.name: {"type": "apiKey", "in": "header", "name": key.header},
            BEARER_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "The access_token from POST /auth/login.",
            },
        }

    def get_security_requirements(self, obj: Authenticator, context: object = None) -> list[dict]:
        key = _scoped(obj)
        scopes = [key.scope] if key.scope else []
        if key.users_only:
            return [{BEARER_SCHEME: scopes}]
        return [{key.name: scopes}, {BEARER_SCHEME: scopes}]


def _scoped(obj: Authenticator) -> ScopeAuthenticator:
    # Rebar hands a converter only authenticators of its AUTHENTICATOR_TYPE.
    if not isinstance(obj, ScopeAuthenticator):
        raise TypeError(f"ScopeConverter cannot document {type(obj).__name__}.")
    return obj


# Rebar's registries are its documented place for converters of custom field types.
for converters in (request_body_converter_registry, response_converter_registry):
    converters.register_type(EmailConverter())
    converters.register_type(NullableLengthConverter())
    converters.register_type(SettingChoiceConverter())
for converters in (request_body_converter_registry, query_string_converter_registry):
    converters.register_type(StorableStringConverter())

authenticator_converters = AuthenticatorConverterRegistry()
authenticator_converters.register_type(ScopeConverter())
# Any status an endpoint does not list is described by the app's own error shape.
openapi_generator = SwaggerV3Generator(
    authenticator_converter_registry=authenticator_converters,
    default_response_schema=ErrorSchema(),
)
openapi_generator.register_flask_converter_to_swagger_type("id", IdConverter)

registry = rebar.create_handler_registry(
    prefix="/api/v1",
    default_authenticators=[ScopeAuthenticator()],
    swagger_generator=openapi_generator,
    # Served by backend/api_docs, which adds the configured title and can require credentials.
    spec_path=None,
    swagger_ui_path=None,
)


def operations() -> Iterator[tuple[str, str, PathDefinition]]:
    """Every (rule, method, definition) registered so far: what the API serves."""
    for rule, methods in registry.paths.items():
        for method, definition in methods.items():
            yield rule, method, definition
