"""What ``nsfw-scan review``'s page holds, read as its script reads it."""

from __future__ import annotations

import json


def review_items(html: str) -> list[dict]:
    """The items of a review page (the JSON its script starts from)."""
    start = html.index("const ITEMS = ") + len("const ITEMS = ")
    return json.loads(html[start:html.index(";\n", start)])
