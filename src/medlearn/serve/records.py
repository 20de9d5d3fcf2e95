"""JSON request bodies for models whose ``input_kind`` is not "image".

Body: ``{"records": [...], "options": {...}}`` (a bare list is taken as the records). A record is an
object of strings/numbers; for "smiles" a plain string stands for ``{"smiles": s}``. The fields each
input kind needs: :data:`RECORD_FIELDS`. "count" models (generators) take options only, e.g.
``{"options": {"n": 10}}``. Shape errors are 422; whether a SMILES parses is the model's to say (400).
"""

from __future__ import annotations

import json
from typing import Any

from medlearn.serve.errors import malformed

RECORD_FIELDS: dict[str, tuple[str, ...]] = {"smiles": ("smiles",), "pairs": ("smiles", "sequence"), "count": ()}
MAX_RECORDS = 10_000
MAX_TEXT = 100_000  # characters per value: a protein sequence is at most a few thousand
BODY_KEYS = ("records", "options")


def parse_records(body: bytes, kind: str) -> tuple[list[dict[str, Any]] | None, dict[str, Any]]:
    """``(records, options)`` from a JSON body for a model taking ``kind`` inputs."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise malformed(f"request body is not valid JSON ({type(exc).__name__} at position "
                        f"{getattr(exc, 'pos', '?')})") from None
    if isinstance(data, list):
        data = {"records": data}
    if not isinstance(data, dict):
        raise malformed('expected a JSON object {"records": [...], "options": {...}}')
    unknown = sorted(set(data) - set(BODY_KEYS))
    if unknown:
        raise malformed(f"unknown key(s) in the body: {', '.join(k[:40] for k in unknown[:5])} "
                        f"(expected {', '.join(BODY_KEYS)})")
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise malformed("'options' must be a JSON object")
    fields = RECORD_FIELDS.get(kind, ())
    records = data.get("records")
    if not fields:
        if records is not None and not isinstance(records, list):
            raise malformed("'records' must be a list")
        return records, options
    if not isinstance(records, list) or not records:
        example = ", ".join(f'"{f}": "..."' for f in fields)
        raise malformed(f"'records' must be a non-empty list of objects {{{example}}}")
    if len(records) > MAX_RECORDS:
        raise malformed(f"{len(records)} records in one request (limit {MAX_RECORDS})")
    return [_record(r, i, kind, fields) for i, r in enumerate(records)], options


def _record(record: Any, i: int, kind: str, fields: tuple[str, ...]) -> dict[str, Any]:
    if isinstance(record, str) and fields == ("smiles",):
        record = {"smiles": record}
    if not isinstance(record, dict):
        raise malformed(f"records[{i}] must be an object with {', '.join(fields)}")
    for key in fields:
        if not isinstance(record.get(key), str):
            raise malformed(f"records[{i}].{key} is missing or not a string ({kind} inputs need "
                            f"{', '.join(fields)})")
    for key, value in record.items():
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            raise malformed(f"records[{i}].{str(key)[:40]} must be a string or a number")
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise malformed(f"records[{i}].{str(key)[:40]} is longer than {MAX_TEXT} characters")
    return record
