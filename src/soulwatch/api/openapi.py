"""The OpenAPI 3 document of soulwatch's own endpoints.

Prometheus's and Alertmanager's endpoints are documented by their projects;
the silences endpoints are listed here too because soulwatch serves them.
"""

from __future__ import annotations

from typing import Any

from soulwatch import __version__

_JSON = "application/json"
_TEXT = "text/plain"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_TEXT: {"schema": {"type": "string"}}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


_AUTH: list[dict[str, list[str]]] = [{"bearer": []}]
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
}
_REST = {"name": "rest", "in": "path", "required": True, "schema": {"type": "string"}}


def _ping_op(summary: str, *, slug: bool = False) -> dict[str, Any]:
    string = {"type": "string", "minLength": 1}
    by_uuid = [
        {
            "name": "uuid",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
        }
    ]
    by_slug = [
        {"name": "ping_key", "in": "path", "required": True, "schema": string},
        {"name": "slug", "in": "path", "required": True, "schema": string},
        {
            "name": "create",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": ["0", "1"]},
        },
    ]
    params = [
        *(by_slug if slug else by_uuid),
        {
            "name": "rid",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "format": "uuid"},
        },
    ]
    responses = {
        "200": _text("OK"),
        "400": _text("invalid url format"),
        "404": _text("not found"),
        "413": _text("body too large"),
    }
    if slug:
        responses["201"] = _text("Created (auto-created check)")
        responses["409"] = _text("ambiguous slug")
    return {
        "get": {"summary": summary, "parameters": params, "responses": responses, "security": []},
        "post": {
            "summary": summary + " (the body is kept as the ping's message)",
            "parameters": params,
            "requestBody": {"required": False, "content": {_TEXT: {"schema": {"type": "string"}}}},
            "responses": responses,
            "security": [],
        },
    }


def openapi_document() -> dict[str, Any]:
    """The document served at ``/api/v1/openapi.json``."""
    check_ref = {"$ref": "#/components/schemas/Check"}
    paths: dict[str, Any] = {
        "/ping/{uuid}": _ping_op("Signal success"),
        "/ping/{uuid}/start": _ping_op("Signal that a run started"),
        "/ping/{uuid}/fail": _ping_op("Signal failure"),
        "/ping/{uuid}/log": _ping_op("Log a message without changing the status"),
        # /ping/{uuid}/{exit_code} is served too; it is left out here because
        # OpenAPI forbids two templated paths of the same shape (the slug form).
        "/ping/{ping_key}/{slug}": _ping_op("Signal success, by slug", slug=True),
        "/ping/{ping_key}/{slug}/start": _ping_op("Signal a start, by slug", slug=True),
        "/ping/{ping_key}/{slug}/fail": _ping_op("Signal failure, by slug", slug=True),
        "/api/v1/heartbeats": {
            "get": {
                "summary": "List heartbeat checks with their status",
                "responses": {"200": _json("checks", {"type": "object"}), "401": _error("auth")},
            },
            "post": {
                "summary": "Create a heartbeat check (scope admin)",
                "security": _AUTH,
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/CheckSpec"}}},
                },
                "responses": {
                    "201": _json("created", check_ref),
                    "400": _error("invalid body"),
                    "401": _error("missing or invalid token"),
                    "403": _error("token lacks the scope"),
                    "409": _error("name taken"),
                    "413": _error("body too large"),
                },
            },
        },
        "/api/v1/heartbeats/{name}": {
            "parameters": [_NAME],
            "get": {
                "summary": "One check with its status changes",
                "responses": {"200": _json("check", check_ref), "404": _error("unknown")},
            },
            "put": {
                "summary": "Replace an API-created check's definition (scope admin)",
                "security": _AUTH,
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/CheckSpec"}}},
                },
                "responses": {
                    "200": _json("check", check_ref),
                    "400": _error("invalid"),
                    "401": _error("auth"),
                    "403": _error("scope"),
                    "404": _error("unknown"),
                    "409": _error("declared in config"),
                },
            },
            "delete": {
                "summary": "Delete an API-created check (scope admin)",
                "security": _AUTH,
                "responses": {
                    "204": {"description": "deleted"},
                    "401": _error("auth"),
                    "403": _error("scope"),
                    "404": _error("unknown"),
                    "409": _error("declared in config"),
                },
            },
        },
        "/api/v1/heartbeats/{name}/pause": {
            "parameters": [_NAME],
            "post": {
                "summary": "Pause a check: it expects no ping and does not alert (scope admin)",
                "security": _AUTH,
                "responses": {
                    "200": _json("check", check_ref),
                    "401": _error("auth"),
                    "403": _error("scope"),
                    "404": _error("unknown"),
                },
            },
        },
        "/api/v1/heartbeats/{name}/resume": {
            "parameters": [_NAME],
            "post": {
                "summary": "Resume a paused check (scope admin)",
                "security": _AUTH,
                "responses": {
                    "200": _json("check", check_ref),
                    "401": _error("auth"),
                    "403": _error("scope"),
                    "404": _error("unknown"),
                    "409": _error("not paused"),
                },
            },
        },
        "/api/v1/heartbeats/{name}/pings": {
            "parameters": [_NAME],
            "get": {
                "summary": "Recent pings with their messages",
                "responses": {"200": _json("pings", {"type": "object"}), "404": _error("unknown")},
            },
        },
        "/api/v1/alerts/history": {
            "get": {
                "summary": "Alert state transitions, newest first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                    }
                ],
                "responses": {
                    "200": _json("history", {"type": "object"}),
                    "400": _error("bad limit"),
                },
            }
        },
        "/api/v1/receivers": {
            "get": {
                "summary": "Receivers with their last delivery error",
                "responses": {"200": _json("receivers", {"type": "object"})},
            }
        },
        "/api/v1/probes": {
            "get": {
                "summary": "Probes with their last error",
                "responses": {"200": _json("probes", {"type": "object"})},
            }
        },
        "/api/v1/push/job/{rest}": {
            "parameters": [_REST],
            "post": {
                "summary": "Push Prometheus text exposition (scope push)",
                "description": "The path is job/<job>[/<label>/<value>...].",
                "security": _AUTH,
                "requestBody": {
                    "required": True,
                    "content": {_TEXT: {"schema": {"type": "string"}}},
                },
                "responses": {
                    "200": _json("stored", {"type": "object"}),
                    "400": _error("invalid"),
                    "401": _error("auth"),
                    "403": _error("scope"),
                    "413": _error("too large"),
                },
            },
        },
        "/api/v2/silences": {
            "get": {
                "summary": "Silences (Alertmanager v2)",
                "responses": {
                    "200": _json("silences", {"type": "array"}),
                    "503": _error("no alerting"),
                },
            },
            "post": {
                "summary": "Create or update a silence (scope silences)",
                "security": _AUTH,
                "requestBody": {
                    "required": True,
                    "content": {
                        _JSON: {"schema": {"$ref": "#/components/schemas/PostableSilence"}}
                    },
                },
                "responses": {
                    "200": _json("id", {"type": "object"}),
                    "400": _error("invalid"),
                    "401": _error("auth"),
                    "403": _error("scope"),
                    "404": _error("unknown id"),
                    "503": _error("no alerting"),
                },
            },
        },
        "/api/v2/silence/{id}": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "get": {
                "summary": "One silence",
                "responses": {
                    "200": _json("silence", {"type": "object"}),
                    "404": _error("unknown"),
                    "503": _error("no alerting"),
                },
            },
            "delete": {
                "summary": "Expire a silence (scope silences)",
                "security": _AUTH,
                "responses": {
                    "200": {"description": "expired"},
                    "401": _error("auth"),
                    "403": _error("scope"),
                    "404": _error("unknown"),
                    "503": _error("no alerting"),
                },
            },
        },
        "/-/reload": {
            "post": {
                "summary": "Reload the config (scope admin); a bad config is rejected",
                "security": _AUTH,
                "responses": {
                    "200": _json("reloaded", {"type": "object"}),
                    "400": _error("bad config"),
                    "401": _error("auth"),
                    "403": _error("scope"),
                    "503": _error("unavailable"),
                },
            }
        },
        "/health": {
            "get": {
                "summary": "soulwatch's own health",
                "responses": {
                    "200": _json("ok", {"type": "object"}),
                    "503": _json("degraded", {"type": "object"}),
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "soulwatch",
            "version": __version__,
            "description": (
                "soulwatch's own HTTP API. Prometheus-compatible endpoints"
                " (/api/v1/query...) follow Prometheus's documentation."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
                    "required": ["error"],
                },
                "CheckSpec": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 200},
                        "uuid": {"type": "string", "format": "uuid"},
                        "slug": {"type": "string", "pattern": "^[a-z0-9_-]+$"},
                        "period": {"type": "string", "example": "5m"},
                        "schedule": {"type": "string", "example": "0 3 * * *"},
                        "tz": {"type": "string", "example": "Europe/Paris"},
                        "grace": {"type": "string", "example": "10m"},
                        "description": {"type": "string"},
                    },
                },
                "Check": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "status": {
                            "type": "string",
                            "enum": ["new", "up", "grace", "down", "paused"],
                        },
                    },
                },
                "PostableSilence": {
                    "type": "object",
                    "required": ["matchers", "startsAt", "endsAt", "createdBy", "comment"],
                    "properties": {
                        "id": {"type": "string"},
                        "matchers": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["name", "value", "isRegex"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "value": {"type": "string"},
                                    "isRegex": {"type": "boolean"},
                                    "isEqual": {"type": "boolean"},
                                },
                            },
                        },
                        "startsAt": {"type": "string", "format": "date-time"},
                        "endsAt": {"type": "string", "format": "date-time"},
                        "createdBy": {"type": "string"},
                        "comment": {"type": "string"},
                    },
                },
            },
        },
    }
