"""How a release's env is stored: one serialized column, encoded and decoded only here.

Keeping the encoding in one pair of functions leaves one place to add encryption at rest.

>>> encode_env({"B": "2", "A": "x=y\\nz"})
'{"A": "x=y\\\\nz", "B": "2"}'
>>> decode_env(encode_env({"B": "2", "A": "é"}))
{'A': 'é', 'B': '2'}
"""

from __future__ import annotations

import json
from collections.abc import Mapping


def encode_env(env: Mapping[str, str]) -> str:
    """JSON text of the env as a dict sorted by key."""
    return json.dumps(dict(sorted(env.items())), ensure_ascii=False, separators=(", ", ": "))


def decode_env(text: str) -> dict[str, str]:
    value = json.loads(text) if text else {}
    if not isinstance(value, dict):
        raise ValueError("stored env is not a JSON object")
    return {str(k): str(v) for k, v in value.items()}


def encode_images(images: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(images.items())), ensure_ascii=False)


def decode_images(text: str) -> dict[str, str]:
    value = json.loads(text) if text else {}
    return {str(k): str(v) for k, v in value.items()}
