"""A reader for the small YAML subset docker-compose.yml is written in, so tests can check it.

Supported: block mappings and block sequences by indentation, full-line comments, plain and
double-quoted scalars, and flow collections written as JSON. Anything else raises ValueError,
so the file cannot drift out of what this reader understands without a test noticing.
"""

import json


def _scalar(text):
    if text[0] in '["{':
        return json.loads(text)  # a double-quoted YAML scalar or a JSON-style flow collection
    if text[0] in "'&*!|>%@`":
        raise ValueError(f"unsupported YAML: {text!r}")
    return text


def _block(lines, i, indent):
    """Parse the block starting at lines[i], all of whose rows have this indent."""
    if lines[i][1].startswith("- "):
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            items.append(_scalar(lines[i][1][2:].strip()))
            i += 1
        return items, i
    mapping = {}
    while i < len(lines) and lines[i][0] == indent:
        key, colon, rest = lines[i][1].partition(":")
        if not colon or key in mapping:
            raise ValueError(f"unsupported YAML line: {lines[i][1]!r}")
        rest = rest.strip()
        i += 1
        if rest:
            mapping[key] = _scalar(rest)
        elif i < len(lines) and lines[i][0] > indent:
            mapping[key], i = _block(lines, i, lines[i][0])
        else:
            mapping[key] = None
    return mapping, i


def load(text):
    """The document in text as dicts, lists and strings."""
    lines = [(len(raw) - len(raw.lstrip(" ")), raw.strip()) for raw in text.splitlines()
             if raw.strip() and not raw.strip().startswith("#")]
    document, end = _block(lines, 0, lines[0][0])
    if end != len(lines):
        raise ValueError(f"unsupported YAML near: {lines[end][1]!r}")
    return document
