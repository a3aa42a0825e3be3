"""λ similar: "dresses like this one" for the web app's API, without torch.

Event: `{"image_id": ID, "k": 10, "same": ["silhouette"], "differ": ["neckline",
"neckline=v-neck"], "other_products": true, "kind": "supervised"}` (invoked directly), or an
API Gateway HTTP API event with `pathParameters.image_id` and the same options in the query
string (lists comma-separated). Answer: an HTTP response whose body is the JSON object
`dressvision similar --json` prints; 400 for a bad query, 404 for an image not in the index.
The query runs against the deployment's S3 Vectors index (`shared.similarity.similar`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from lambdas import wiring
from shared.errors import DressvisionError, NotFoundError
from shared.ports import Ports
from shared.similarity import DEFAULT_K, check_kind, default_kind, parse_differ, similar

logger = logging.getLogger(__name__)


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in (p.strip() for p in value.split(",")) if part]
    return [str(v) for v in value]


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes")


def params_of(event: Mapping[str, Any]) -> dict[str, Any]:
    """The query's parameters from a direct or an API Gateway event."""
    params = dict(event.get("queryStringParameters") or {})
    params.update({k: v for k, v in event.items() if k not in ("queryStringParameters",)})
    params.update(event.get("pathParameters") or {})
    return params


def answer(ports: Ports, event: Mapping[str, Any]) -> tuple[int, dict]:
    """(HTTP status, body) of one query."""
    params = params_of(event)
    image_id = params.get("image_id")
    if not image_id:
        return 400, {"error": "image_id is required"}
    try:
        k = int(params.get("k") or DEFAULT_K)
        if ports.vectors is None:
            return 503, {"error": "this deployment has no similarity index"}
        kind = check_kind(str(params.get("kind") or default_kind(ports.artifacts)))
        body = similar(
            ports.vectors(kind),
            str(image_id),
            ports.taxonomy,
            k=k,
            same=_list(params.get("same")),
            differ=[parse_differ(d) for d in _list(params.get("differ"))],
            other_products=_flag(params.get("other_products")),
        )
    except NotFoundError as exc:
        return 404, {"error": str(exc)}
    except ValueError as exc:  # a bad facet, label, kind or k
        return 400, {"error": str(exc)}
    except DressvisionError as exc:  # the index is missing or failing
        return 503, {"error": str(exc)}
    return 200, body


def handler(event: dict, context: object) -> dict:
    status, body = answer(wiring.ports(), event)
    if status >= 500:
        logger.error("similar: %s", body)
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }
