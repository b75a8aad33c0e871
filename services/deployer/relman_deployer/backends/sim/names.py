"""Names the way Kubernetes makes them: pod-template hashes, generated pod names, node names.

A ReplicaSet is ``<deployment>-<pod-template-hash>``: the FNV-1a 32-bit hash of the pod
template, written in decimal and passed through ``rand.SafeEncodeString``, which maps every
byte onto an alphabet without vowels or look-alike characters (so a hash never spells a word).

>>> safe_encode_string("301940187")
'745f845dc'
>>> template_hash({"image": "x"}) == template_hash({"image": "x"})
True
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping

# k8s.io/apimachinery/pkg/util/rand: "bcdfghjklmnpqrstvwxz2456789".
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


def fnv32a(data: bytes) -> int:
    """FNV-1a, 32 bits (Go's ``hash/fnv.New32a``).

    >>> fnv32a(b"")
    2166136261
    >>> fnv32a(b"a")
    3826002220
    """
    h = _FNV32_OFFSET
    for byte in data:
        h ^= byte
        h = (h * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def safe_encode_string(s: str) -> str:
    """``rand.SafeEncodeString``: each byte replaced by ``alphabet[byte % len(alphabet)]``."""
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in s.encode())


def template_hash(template: Mapping[str, object], collision_count: int = 0) -> str:
    """``ComputeHash``: a stable, safe-encoded hash of everything that shapes a pod.

    ``template`` must be JSON-serialisable; key order does not matter. As in Kubernetes, a
    ``collision_count`` is mixed in to move away from a hash another template already has.

    >>> template_hash({"image": "x"}) != template_hash({"image": "x"}, collision_count=1)
    True
    """
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    if collision_count:
        canonical += str(collision_count)
    return safe_encode_string(str(fnv32a(canonical.encode())))


def generated_suffix(rng: random.Random, length: int = 5) -> str:
    """``utilrand.String(5)``: the random part of a ``generateName`` pod name."""
    return "".join(rng.choice(SAFE_ALPHABET) for _ in range(length))


def node_name(rng: random.Random) -> str:
    """A node as the seed page shows them: ``instance-`` and 12 hex digits."""
    return f"instance-{rng.getrandbits(48):012x}"
