"""The one JSON parser of the API: DRF's, plus the checks that keep unstorable JSON out (config/inputs.py)."""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json as drf_json

from . import fastjson
from .exceptions import BadRequest, ValidationFailed
from .inputs import MAX_JSON_DEPTH, json_body_problem


class JSONParser(parsers.JSONParser):
    """Malformed JSON or nesting deeper than MAX_JSON_DEPTH -> 400 BAD_REQUEST; a string PostgreSQL cannot
    store (NUL, a lone surrogate) -> 400 VALIDATION_ERROR naming the field by its dotted path."""

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None
    ) -> Any:
        encoding = parsers.get_encoding(parser_context or {})
        raw = stream.read()
        try:
            text = raw.decode(encoding)
            parse_constant = drf_json.strict_constant if self.strict else None
            data = fastjson.loads(text, parse_constant=parse_constant)
        except RecursionError:
            raise BadRequest(
                f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.",
                details={"non_field_errors": [f"At most {MAX_JSON_DEPTH} levels of nesting."]},
            ) from None
        except ValueError as exc:  # UnicodeDecodeError is a ValueError too
            raise ParseError(f"JSON parse error - {exc}") from None
        problem = json_body_problem(raw, data)
        if problem is not None:
            kind, field, message = problem
            if kind == "depth":
                raise BadRequest(
                    f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.",
                    details={field or "non_field_errors": [message]},
                )
            raise ValidationFailed(details={field: [message]})
        return data
