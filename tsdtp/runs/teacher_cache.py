"""Where a teacher run keeps the outputs it computed once for its students, and the key of one cached file.

Classification (`tsdtp.classification.teacher`) and LLM classification (`tsdtp.llm.classifier_teacher`) both cache
their teacher's outputs on a student's training split in `<teacher>/teacher_cache/<key>.pt`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

CACHE_FOLDER = "teacher_cache"
"""The folder of a teacher's run directory that holds its cached outputs, one file per training split."""


def cache_key(teacher_dir: Path, token_ids: object) -> str:
    """What cached outputs depend on: the split's token ids in order (any JSON-able nesting) and the teacher's
    checkpoint file."""
    checkpoint = (teacher_dir / "checkpoint.pt").stat()
    digest = hashlib.sha256(json.dumps(token_ids).encode())
    digest.update(f"{checkpoint.st_size}:{checkpoint.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]
