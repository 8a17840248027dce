"""An export directory's files and the policy card's schema, checked when the directory is read.

What the card says is set out where it is written (:mod:`winback.export.card`); reading it needs
only the standard library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from winback.checked_json import read_checked, sha256_file
from winback.errors import ArtifactError

SCHEMA = "winback.policy_card"
SCHEMA_VERSION = 2
"""Bumped whenever a field's meaning or an ONNX file's inputs or outputs change (not for added fields,
which readers of the version ignore: ``population`` and ``state_update.origin`` came in version 2).

- 2: ``policy.onnx`` outputs ``probabilities`` (the policy's distribution over the allowed actions)
  and the card states exactly what ``scores`` are (``policy.outputs``); ``masks.since_cap``.
- 1: first version.
"""
CARD_FILE = "policy_card.json"
POLICY_FILE = "policy.onnx"
STATE_FILE = "state_update.onnx"
ARTIFACT_FILES = (POLICY_FILE, STATE_FILE, CARD_FILE)
"""Everything an export directory holds: two ONNX graphs and JSON, nothing pickled."""


def read_card(directory: str | Path) -> dict[str, Any]:
    """The card of an export directory, once the schema, the card's hash and each file's sha256 check out.

    Raises :class:`ArtifactError` naming the file for a missing file, malformed JSON, an unknown schema
    or schema version, an edited card, or an ONNX file whose bytes are not those exported.
    """
    root = Path(directory)
    path = root / CARD_FILE
    if not root.is_dir():
        raise ArtifactError(f"{root}: not a directory (expected an export directory from 'winback export')")
    if not path.is_file():
        raise ArtifactError(f"{path}: missing; {root} is not an exported policy")
    card = read_checked(
        path,
        kind=("schema", SCHEMA),
        version=("schema_version", SCHEMA_VERSION),
        what="a winback policy card",
        remedy="export the policy again",
    )
    for name in (POLICY_FILE, STATE_FILE):
        file = root / name
        if not file.is_file():
            raise ArtifactError(f"{file}: missing (listed in {CARD_FILE})")
        if sha256_file(file) != card["files"][name]["sha256"]:
            raise ArtifactError(f"{file}: sha256 does not match {CARD_FILE}; the file was modified")
    return card
