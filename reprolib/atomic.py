"""Crash-safe file writes, in one place: unique temporary names, rename into place, stale temps removed.

Every writer of a file others read (metrics JSON, checkpoints, stored runs, generated datasets, executed
notebooks) writes a temporary sibling and renames it over the final name, so a reader never sees half a
file. Three rules make that hold under crashes and concurrency:

* **a unique temporary name per writer** (``mkstemp`` / ``mkdtemp`` in the target's folder): two
  processes saving the same file never write into one temporary file;
* **the writer's host and PID in that name** (``.<name>.tmp@<host>.<pid>.<random><suffix>``): a temp
  whose process is dead is a leftover of a killed writer and :func:`remove_stale` deletes it; one of a
  live process (or of this process: another thread may be writing it) is never touched;
* **cleaned on failure**: an exception (including ``KeyboardInterrupt``) removes the temporary file.

"Dead" is judged on this host (the host name is in the temp's name, so a temp written over a shared
file system by another machine is never removed); writers in separate PID namespaces that share both a
host name and a folder would defeat it. Temporaries named before this scheme carry no PID and stay.

Journals (:func:`append_line`) take one ``write`` per record on a file opened for appending, so records
from a killed process are either whole or a torn last line, which readers skip.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TAG = "tmp@"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def temp_prefix(name: str, pid: int | None = None, host: str | None = None) -> str:
    """The prefix of the temporary siblings of ``name`` made by process ``pid`` on ``host`` (default:
    this process)."""
    return f".{name}.{TAG}{host or _host()}.{os.getpid() if pid is None else pid}."


def _owner(entry: str, name: str) -> tuple[str, int] | None:
    """(host, pid) of a temporary sibling of ``name`` made by :func:`temp_prefix`, else None."""
    m = re.match(rf"\.{re.escape(name)}\.{re.escape(TAG)}([A-Za-z0-9_-]+)\.(\d+)\.", entry)
    return (m.group(1), int(m.group(2))) if m else None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (another user's process counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # an out-of-range pid and the like: not a process that can be writing
        return False
    return True


def remove_stale(path: Path) -> list[Path]:
    """Delete temporary siblings of ``path`` left by dead writers on this host; returns what went.

    A temp of another host (a shared file system) or of a live process stays: it may be in use."""
    path = Path(path)
    host, removed = _host(), []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        owner = _owner(entry.name, path.name)
        if owner is None or owner[0] != host or pid_alive(owner[1]):
            continue
        stale = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(stale)
            else:
                stale.unlink()
        except FileNotFoundError:  # another process cleaned it first
            continue
        except OSError:
            continue  # not ours to force; it will be tried again next time
        removed.append(stale)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def temp_file(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a fresh, empty temporary file beside ``path`` (stale temps of dead writers of ``path``
    removed first); it is deleted on the way out unless the caller moved it (:func:`publish`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    fd, name = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def publish(tmp: Path, path: Path, mode: int | None = None) -> None:
    """Rename a finished temporary file over ``path``, with ``mode`` (default: what a plain ``open``
    would give under the umask; ``mkstemp`` alone makes files private)."""
    os.chmod(tmp, (0o666 & ~_umask()) if mode is None else mode)
    os.replace(tmp, path)


@contextmanager
def replacing(path: Path, suffix: str = ".tmp", mode: int | None = None) -> Iterator[Path]:
    """Yield a fresh temporary file beside ``path``; on a clean exit rename it over ``path``
    (:func:`publish`), on an exception delete it. Stale temps of dead writers are removed first."""
    with temp_file(path, suffix) as tmp:
        yield tmp
        publish(tmp, Path(path), mode)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (readers see the old file or the new one, never half)."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode())


@contextmanager
def temp_dir(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target`` (stale ones of dead writers removed first);
    it is deleted on an exception, and left to the caller to rename on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target.name), dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def append_line(path: Path, line: str) -> None:
    """Append one record (a line without newlines) to a journal with a single ``write`` and fsync it.

    A torn last line left by a killed writer is ended first, so it stays one bad line that readers
    skip instead of swallowing this record."""
    if "\n" in line:
        raise ValueError("a journal record must be one line")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        lead = b""
        if size:
            with open(path, "rb") as fh:
                fh.seek(size - 1)
                lead = b"" if fh.read(1) == b"\n" else b"\n"
        record = memoryview(lead + line.encode() + b"\n")
        while record:  # a regular file takes it in one write; loop only in case it does not
            record = record[os.write(fd, record):]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_lines(path: Path) -> Iterator[str]:
    """The complete lines of a journal (a last line without its newline is a torn write: skipped)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return
    for raw in data.split(b"\n")[:-1]:
        try:
            yield raw.decode()
        except UnicodeDecodeError:
            continue
