"""The page at GET /: dashboard.html, read once at start-up and sent with a Content-Security-Policy
that lets exactly its own inline script and style run, and nothing else."""

import base64
import hashlib
import re
from pathlib import Path
from typing import NamedTuple

PAGE_PATH = Path(__file__).with_name("dashboard.html")
CONTENT_TYPE = "text/html; charset=utf-8"


class Page(NamedTuple):
    """The page's text and the headers it is sent with."""

    html: str
    headers: list[tuple[str, str]]


def source_hash(text: str) -> str:
    """A CSP hash source for an inline block: the browser hashes the block's text exactly as sent."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def only_block(html: str, tag: str) -> str:
    """The text of the page's one <tag> block; a page with none or several is a mistake to stop at."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL)
    if len(blocks) != 1:
        raise ValueError(f"{PAGE_PATH.name} must have exactly one <{tag}> block, not {len(blocks)}")
    return blocks[0]


def content_security_policy(html: str) -> str:
    """The page's policy: its one script and its one style by hash, fetch to this origin only, nothing else.

    Hashes rather than a script served by a route of its own ('self'): the page stays one file,
    one request, and the policy names the exact script the server read, so nothing else can run
    here, not even another response of this origin. Data shown on the page is escaped anyway
    (textContent); the policy is what stops a script if a mistake ever let markup through.
    """
    return "; ".join([
        "default-src 'none'",
        f"script-src {source_hash(only_block(html, 'script'))}",
        f"style-src {source_hash(only_block(html, 'style'))}",
        "connect-src 'self'",  # fetch() to this API, nowhere else
        "img-src data:",  # the empty favicon, so the browser asks for no /favicon.ico
        "base-uri 'none'",
        "form-action 'none'",  # the form is sent by the script, never by the browser
        "frame-ancestors 'none'",  # no other site may frame the buttons (clickjacking)
    ])


def load_page(path: Path = PAGE_PATH) -> Page:
    """Read the page once and work out its headers; a page the policy cannot describe stops start-up."""
    html = path.read_text(encoding="utf-8")
    return Page(html, [("Content-Security-Policy", content_security_policy(html))])
