"""JSON in and out: a bounded, strict request-body reader and a writer that keeps money exact."""

import json
import re
from decimal import Decimal

from lib.http.errors import HTTPError

MAX_BODY_BYTES = 64 * 1024


def _reject_duplicates(pairs):
    """object_pairs_hook: a key given twice is ambiguous (which amount was meant?), so refuse it."""
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def parse_json(data: bytes) -> object:
    """Decode a UTF-8 JSON document; every number becomes a Decimal, so none is rounded."""
    # parse_constant turns NaN / Infinity into Decimals so validation can name the field they
    # are in; parse_int=Decimal also avoids int()'s limit on very long digit strings.
    return json.loads(data.decode("utf-8"), parse_float=Decimal, parse_int=Decimal,
                      parse_constant=Decimal, object_pairs_hook=_reject_duplicates)


def read_json_body(environ: dict, limit: int = MAX_BODY_BYTES) -> object:
    """Read and decode the request body as JSON, or raise HTTPError 415, 413 or 400."""
    media_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise HTTPError(415, "Content-Type must be application/json")
    length_text = environ.get("CONTENT_LENGTH") or "0"
    # ASCII digits only: int() would also take "１２", " 12" and "1_2".
    if not re.fullmatch(r"[0-9]{1,12}", length_text):
        raise HTTPError(400, "Content-Length must be a whole number")
    length = int(length_text)
    if length > limit:
        raise HTTPError(413, f"request body is larger than {limit} bytes")
    # Read one byte past the limit so a body that lied about its length is still caught.
    data = environ["wsgi.input"].read(min(length, limit + 1)) if length > 0 else b""
    if len(data) > limit:
        raise HTTPError(413, f"request body is larger than {limit} bytes")
    if not data.strip():
        raise HTTPError(400, "request body is empty; send a JSON object")
    try:
        return parse_json(data)
    except UnicodeDecodeError:
        raise HTTPError(400, "request body is not valid UTF-8") from None
    except RecursionError:
        raise HTTPError(400, "request body is nested too deeply") from None
    except ValueError as error:  # json.JSONDecodeError is a ValueError, and so is a duplicate key
        raise HTTPError(400, f"request body is not valid JSON: {error}") from None


def dumps(value: object) -> str:
    """Serialise value as compact JSON, writing a Decimal as the exact number it holds."""
    # json.dumps cannot write a Decimal as a bare number, so containers are walked here.
    if isinstance(value, Decimal):
        return format(value, "f")  # 19.99 stays 19.99: no float ever touches money
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(key)) + ":" + dumps(item) for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(item) for item in value) + "]"
    return json.dumps(value)  # strings, numbers, booleans, None
