"""How a release's env is stored: one sealed column, encoded and decoded only here.

The env is serialized as JSON and sealed with AES-256-GCM (:class:`SecretBox`); the release
id is the associated data, so a sealed env copied onto another release's row does not open.
Reading an env that was stored unencrypted, or sealed with another key, fails with
FAILED_PRECONDITION and says which release and why; nothing else is affected.

>>> from relman_common.secretbox import SecretBox
>>> box = SecretBox(bytes(32))
>>> sealed = encode_env({"B": "2", "A": "x=y\\nz"}, box, "RBCDEFGHIJK")
>>> sealed.startswith("v1:"), "x=y" in sealed
(True, False)
>>> decode_env(sealed, box, "RBCDEFGHIJK")
{'A': 'x=y\\nz', 'B': '2'}
>>> decode_env(sealed, box, "RCDEFGHIJKL")
Traceback (most recent call last):
...
relman_common.errors.FailedPrecondition: cannot read the env of release RCDEFGHIJKL: it was sealed with another secret key (RELMAN_SECRET_KEY or <data-dir>/secret.key) or for another release, or the row is damaged
"""  # noqa: E501

from __future__ import annotations

import json
from collections.abc import Mapping

from relman_common.errors import FailedPrecondition
from relman_common.secretbox import SecretBox, SecretBoxError, is_sealed


def serialize_env(env: Mapping[str, str]) -> str:
    """JSON text of the env as a dict sorted by key.

    >>> serialize_env({"B": "2", "A": "é"})
    '{"A": "é", "B": "2"}'
    """
    return json.dumps(dict(sorted(env.items())), ensure_ascii=False, separators=(", ", ": "))


def encode_env(env: Mapping[str, str], box: SecretBox, release_id: str) -> str:
    """The env of release ``release_id``, serialized and sealed for its row."""
    return box.seal(serialize_env(env).encode(), release_id.encode())


def decode_env(text: str, box: SecretBox, release_id: str) -> dict[str, str]:
    """The env stored for ``release_id``; FailedPrecondition when it cannot be opened."""
    if not is_sealed(text):
        raise FailedPrecondition(
            f"cannot read the env of release {release_id}: it is stored unencrypted "
            "(written before encryption at rest), and relman refuses to serve plaintext env"
        )
    try:
        plaintext = box.open(text, release_id.encode())
    except SecretBoxError:
        raise FailedPrecondition(
            f"cannot read the env of release {release_id}: it was sealed with another secret "
            "key (RELMAN_SECRET_KEY or <data-dir>/secret.key) or for another release, or the "
            "row is damaged"
        ) from None
    value = json.loads(plaintext.decode())
    if not isinstance(value, dict):
        raise FailedPrecondition(f"the stored env of release {release_id} is not a JSON object")
    return {str(k): str(v) for k, v in value.items()}


def encode_images(images: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(images.items())), ensure_ascii=False)


def decode_images(text: str) -> dict[str, str]:
    value = json.loads(text) if text else {}
    return {str(k): str(v) for k, v in value.items()}
