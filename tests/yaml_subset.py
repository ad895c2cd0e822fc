"""A reader for the small YAML subset docker-compose.yml is written in, so tests can check it.

Supported: block mappings and block sequences by indentation, full-line comments, plain and
double-quoted scalars, literal block scalars (`|`), flow collections written as JSON, and an
anchor on a block mapping (`key: &name`) that a later mapping copies with the merge key
(`<<: *name`, its own keys winning) or repeats as a value (`key: *name`). Anything else raises
ValueError, so the file cannot drift out of what this reader understands without a test noticing.
"""

import copy
import json


def _scalar(text, anchors):
    if text[0] == "*":
        if text[1:] not in anchors:
            raise ValueError(f"unknown anchor: {text!r}")
        return copy.deepcopy(anchors[text[1:]])
    if text[0] in '["{':
        return json.loads(text)  # a double-quoted YAML scalar or a JSON-style flow collection
    if text[0] in "'&!|>%@`":
        raise ValueError(f"unsupported YAML: {text!r}")
    return text


def _block(lines, i, indent, anchors):
    """Parse the block starting at lines[i], all of whose rows have this indent."""
    if lines[i][1].startswith("- "):
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            items.append(_scalar(lines[i][1][2:].strip(), anchors))
            i += 1
        return items, i
    mapping, merged = {}, {}
    while i < len(lines) and lines[i][0] == indent:
        key, colon, rest = lines[i][1].partition(":")
        if not colon or key in mapping:
            raise ValueError(f"unsupported YAML line: {lines[i][1]!r}")
        rest = rest.strip()
        i += 1
        anchor = rest[1:] if rest.startswith("&") else None
        if anchor:
            rest = ""
        if key == "<<":
            merged.update(_scalar(rest, anchors))
        elif rest:
            mapping[key] = _scalar(rest, anchors)
        elif i < len(lines) and lines[i][0] > indent:
            mapping[key], i = _block(lines, i, lines[i][0], anchors)
        else:
            mapping[key] = None
        if anchor:
            anchors[anchor] = copy.deepcopy(mapping[key])
    return {**merged, **mapping}, i


def _literal_blocks(raw_lines):
    """The lines with each literal block scalar (`key: |` or `- |` and the lines indented under
    it) folded into its first line as one JSON string, so that no comment rule applies inside it."""
    folded, i = [], 0
    while i < len(raw_lines):
        line = raw_lines[i]
        i += 1
        if line.rstrip().endswith((": |", "- |")):
            indent = len(line) - len(line.lstrip(" "))
            text = []
            while i < len(raw_lines) and (not raw_lines[i].strip() or
                                          len(raw_lines[i]) - len(raw_lines[i].lstrip(" ")) > indent):
                text.append(raw_lines[i])
                i += 1
            content = [row for row in text if row.strip()]
            margin = min(len(row) - len(row.lstrip(" ")) for row in content) if content else 0
            body = "\n".join(row[margin:] for row in text).rstrip("\n") + "\n"
            line = line.rstrip()[:-1] + json.dumps(body)
        folded.append(line)
    return folded


def load(text):
    """The document in text as dicts, lists and strings."""
    lines = [(len(raw) - len(raw.lstrip(" ")), raw.strip()) for raw in _literal_blocks(text.splitlines())
             if raw.strip() and not raw.strip().startswith("#")]
    document, end = _block(lines, 0, lines[0][0], {})
    if end != len(lines):
        raise ValueError(f"unsupported YAML near: {lines[end][1]!r}")
    return document
