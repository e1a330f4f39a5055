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


class EmailConverter(StringConverter):
    """Says `format: email`, so clients and contract tests send real addresses."""

    MARSHMALLOW_TYPE = fields.Email

    @sets_swagger_attr(sw.format_)
    def get_format(self, obj: fields.Email, context: object) -> str:
        return "email"


# Rebar's registries are its documented place for converters of custom field types.
for registry in (request_body_converter_registry, response_converter_registry):
    registry.register_type(EmailConverter())

openapi_generator = SwaggerV3Generator(authenticator_converter_registry=authenticator_converters)
openapi_generator.register_flask_converter_to_swagger_type("id", IdConverter)
