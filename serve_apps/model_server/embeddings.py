"""Deterministic text embeddings by feature hashing.

Word stems and stem bigrams are hashed into a fixed number of signed buckets and the
vector is L2-normalised, so texts that share words have a high cosine similarity and
the same text always gets the same vector, on any machine, without a model.
"""

from __future__ import annotations

import hashlib
import itertools
import math

from actorchestra.serve_apps.model_server import text as t

DEFAULT_DIMENSIONS = 384


def _features(text: str) -> list[tuple[str, float]]:
    stems = t.content_stems(text) or [t.stem(w) for w in t.words(text)] or ["<empty>"]
    feats = [(s, 1.0) for s in stems]
    feats += [(f"{a} {b}", 0.5) for a, b in itertools.pairwise(stems)]
    return feats


def embed(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """A unit-length vector of `dimensions` floats for `text`."""
    vector = [0.0] * dimensions
    for feature, weight in _features(text):
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        sign = 1.0 if value & 1 else -1.0
        vector[(value >> 1) % dimensions] += sign * weight
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors (dot product, since embeddings are unit length)."""
    return sum(x * y for x, y in zip(a, b, strict=True))
