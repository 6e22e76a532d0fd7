"""What a run read: a short fingerprint of a dataset's file list, and the record results keep of it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def files_digest(root: str | Path, *, mtimes: bool = False) -> tuple[str, int]:
    """(SHA-256 hex, file count) of the sorted list of (relative path, size[, mtime]) under ``root``
    (or of the one file ``root`` names). Without ``mtimes`` it is the same on every machine holding
    the same files; with them, any rewrite of a file changes it (the run store's stricter need)."""
    root = Path(root).resolve()
    digest = hashlib.sha256()
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in paths:
        stat = path.stat()
        name = path.name if path == root else path.relative_to(root).as_posix()
        digest.update(f"{name}|{stat.st_size}{f'|{stat.st_mtime_ns}' if mtimes else ''}\n".encode())
    return digest.hexdigest(), len(paths)


def data_record(kind: str, root: str | Path, synthetic: bool) -> dict[str, Any]:
    """What a results file says was read for one dataset: the resolved path, synthetic or real, and a
    12-hex fingerprint of its file list (relative paths and sizes) with the file count. Notebook 11
    labels its rows from ``data`` alone, never from the ``data_root`` parameter."""
    digest, count = files_digest(root)
    return {"dataset": kind, "root": str(Path(root).resolve()), "data": "synthetic" if synthetic else "real",
            "fingerprint": digest[:12], "files": count}
