"""How the API's own types appear in the OpenAPI document rebar generates."""

from flask_rebar import SwaggerV3Generator
from flask_rebar.swagger_generation import swagger_words as sw
from flask_rebar.swagger_generation.marshmallow_to_swagger import (
    StringConverter,
    request_body_converter_registry,
    response_converter_registry,
    sets_swagger_attr,
)
from marshmallow import fields

from backend.auth import authenticator_converters
from backend.url_converters import IdConverter


class StorableStringConverter(StringConverter):
    """Says what backend/http_rules.py enforces of request bodies: no NUL character."""

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


# Rebar's registries are its documented place for converters of custom field types.
for registry in (request_body_converter_registry, response_converter_registry):
    registry.register_type(EmailConverter())
request_body_converter_registry.register_type(StorableStringConverter())

openapi_generator = SwaggerV3Generator(authenticator_converter_registry=authenticator_converters)
openapi_generator.register_flask_converter_to_swagger_type("id", IdConverter)
