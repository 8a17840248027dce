"""JSON documents that carry their own content hash, and files checked against recorded hashes:
how winback's artifacts (decay models, exported policies) refuse edited or incompatible files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import winback
from winback.errors import ArtifactError

HASH_KEY = "content_sha256"
"""The key of a document's own hash (over every other key)."""


def content_hash(body: dict[str, Any]) -> str:
    """sha256 of ``body`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def with_hash(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with its :data:`HASH_KEY` added."""
    return {**body, HASH_KEY: content_hash(body)}


def read_checked(
    path: Path, *, kind: tuple[str, str], version: tuple[str, int], what: str, remedy: str
) -> dict[str, Any]:
    """The document in ``path`` without its hash, refused unless it is valid JSON whose ``kind``
    (key, value) matches, whose ``version`` (key, supported value) matches and whose hash holds.

    ``what`` names the document in messages (``a winback policy card``); ``remedy`` says what to do
    about an unsupported version (``export the policy again``).
    """
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: not valid JSON ({err})") from err
    (kind_key, kind_value), (version_key, supported) = kind, version
    if not isinstance(body, dict) or body.get(kind_key) != kind_value:
        raise ArtifactError(f"{path}: not {what} ({kind_key} != '{kind_value}')")
    if body.get(version_key) != supported:
        raise ArtifactError(
            f"{path}: {version_key.replace('_', ' ')} {body.get(version_key)!r} is not supported by winback "
            f"{winback.__version__} (expected {supported}); {remedy} or use the winback version that "
            f"wrote it ({body.get('winback_version')})"
        )
    claimed = body.pop(HASH_KEY, None)
    if claimed != content_hash(body):
        raise ArtifactError(f"{path}: content hash mismatch; the file was modified after it was written")
    return body
