"""The output policy: earthport never removes or replaces anything it did not write.

Every folder earthport writes into holds a small manifest, ``.earthport.json``, listing the entries earthport
wrote there with their fingerprint (size and modification time, which a copy that keeps times — ``cp -a``,
``rsync -a``, ``shutil.copytree`` — keeps too); ``"created": true`` says the folder itself was made by
earthport. An entry is earthport's only while its fingerprint still matches, so a file a user edited or put in
its place is theirs again. A folder is earthport's when earthport created it and everything in
it is earthport's (checked recursively); an opaque folder written whole (a zarr store) is fingerprinted by its
own inode and modification time.

- ``check_output(path, overwrite)``: a new path is fine; an existing one is refused unless ``overwrite`` and it
  is earthport's, in which case ``replace`` may remove it. Refusals are ``OutputError`` naming the path.
- ``atomic_write(path, write)`` / ``atomic_target(path)``: written to a hidden temporary sibling
  (``.<stem>.earthport-tmp-<pid><suffix>``), renamed over ``path`` and recorded in the manifest; any failure,
  Ctrl-C included, removes the temporary. Temporaries left by a killed process (its pid is gone) are removed
  the next time earthport writes into that folder.
- ``make_dir(path)``: a folder earthport owns from now on (a manifest with ``created`` when it is new).
- ``run_lock(path)``: an exclusive lock (``flock``) on a run folder; a second process is refused with the
  holder's pid and command; a lock file left by a dead process is not a lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from earthport.errors import EarthportError

MANIFEST = ".earthport.json"
LOCK = ".earthport.lock"
_TEMP = re.compile(r"^\..+\.earthport-tmp-(\d+)(\.[^.]*)?$")


class OutputError(EarthportError):
    """An output path earthport must not write: it exists and is not earthport's, or ``--overwrite`` is missing."""


def temp_sibling(path: Path) -> Path:
    """The hidden temporary that becomes ``path`` (same folder, same suffix: some writers append theirs)."""
    return path.with_name(f".{path.stem}.earthport-tmp-{os.getpid()}{path.suffix}")


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)``, then rename ``tmp`` over ``path`` and record it as earthport's; never half a file."""
    with atomic_target(Path(path)) as tmp:
        write(tmp)


def write_text(path: str | Path, text: str) -> None:
    """``text`` to ``path`` atomically (see ``atomic_write``)."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` (a file or a folder) to write; on success it replaces ``path``,
    which must be new or earthport's own; on any failure it is removed and ``path`` is untouched."""
    path = Path(path)
    make_dir(path.parent)
    if (path.exists() or path.is_symlink()) and not (_is_empty(path) or _owned(path)):
        kind = "folder" if path.is_dir() else "file"
        raise OutputError(f"{path}: is a {kind} earthport did not write (or changed since); it is never replaced"
                          " (move it away)")  # fmt: skip
    tmp = temp_sibling(path)
    _remove(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise EarthportError(f"{path}: nothing was written")
        if tmp.is_file():
            os.chmod(tmp, 0o644)
        # a rename keeps size and mtime: noted before it (beside the file it replaces), so a kill between the
        # rename and the note cannot leave earthport's own new file looking like a stranger's
        entry = _fingerprint(tmp)
        _note(path, entry, keep=True, forget=tmp.name)
        if tmp.is_dir():
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _note(path, entry)


def write_whole(path: str | Path, overwrite: bool, write: Callable[[Path], object], folder: bool = True) -> None:
    """``write(tmp)`` (a folder or a file), then ``tmp`` replaces ``path``: the output is never half-written or a
    mix of two runs; an existing ``path`` is replaced only with ``overwrite`` and only if earthport wrote it."""
    check_output(path, overwrite, folder)
    atomic_write(path, write)


def make_dir(path: str | Path) -> Path:
    """Create folder ``path`` (and parents) if needed; a folder made here is marked as earthport's."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file, expected a folder")
    if not path.is_dir():
        parent = path.parent
        if not parent.exists():
            make_dir(parent)
        try:
            path.mkdir()
        except FileExistsError:
            if not path.is_dir():
                raise OutputError(f"{path}: is a file, expected a folder") from None
        else:
            _update_manifest(path, lambda m: m.update(created=True))
            if (parent / MANIFEST).exists():
                _record(path)
    elif _is_empty(path) and not _read_manifest(path)["created"]:
        _update_manifest(path, lambda m: m.update(created=True))  # nothing in it is anybody else's
    _clean_stale_temps(path)
    return path


def check_output(path: str | Path, overwrite: bool, folder: bool = False) -> None:
    """Refuse an existing ``path`` unless ``overwrite`` and it is earthport's (``OutputError``); an empty
    folder counts as new. ``folder``: the output is a folder (a file there is refused), else a file."""
    path = Path(path)
    if folder and (path.is_file() or path.is_symlink() and not path.is_dir()):
        raise OutputError(f"{path}: is a file, expected a folder to write into")
    if not (path.exists() or path.is_symlink()) or _is_empty(path):
        return
    found = "folder" if path.is_dir() else "file"
    if not overwrite:
        hint = "pass --overwrite to replace it" if _owned(path) else "it was not written by earthport"
        raise OutputError(f"{path}: a {found} exists there ({hint}; or choose another path)")
    if not _owned(path):
        raise OutputError(
            f"{path}: exists and was not written by earthport (or was changed since); --overwrite replaces only "
            "earthport's own outputs: move it away or choose another path"
        )


def replace(path: str | Path, overwrite: bool, folder: bool = False) -> None:
    """``check_output``, then remove an existing (earthport-owned) ``path`` so it can be written anew; a folder
    is emptied (its lock, if held, stays)."""
    path = Path(path)
    check_output(path, overwrite, folder)
    if path.is_dir() and not path.is_symlink() and (path / MANIFEST).exists():
        for child in path.iterdir():
            if child.name != LOCK:
                _remove(child)
        _update_manifest(path, lambda m: m.update(created=True, entries={}))
    elif path.exists() or path.is_symlink():
        _remove(path)
        _update_manifest(path.parent, lambda m: m["entries"].pop(path.name, None))


def is_owned(path: str | Path) -> bool:
    """Whether ``path`` is earthport's own output (see the module docstring)."""
    return _owned(Path(path))


def record(path: str | Path) -> None:
    """Note ``path`` (written by earthport through a library that writes in place) in its folder's manifest."""
    _record(Path(path))


@contextlib.contextmanager
def run_lock(path: str | Path, command: str = "") -> Iterator[None]:
    """Hold an exclusive lock on folder ``path`` for the duration; refuse if another process holds it."""
    path = make_dir(path)
    lock = path / LOCK
    handle = open(lock, "a+")  # noqa: SIM115 (held for the duration)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise OutputError(f"{path}: in use by {holder}; wait for it to finish or choose another folder") from None
        handle.seek(0)
        handle.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(f"earthport process {os.getpid()} ({command or ' '.join(sys.argv[:2])}, since {started})\n")
        handle.flush()
        yield
    finally:
        handle.close()


def _is_empty(folder: Path) -> bool:
    """A folder holding nothing but earthport's bookkeeping (manifest, lock, temporaries)."""
    return folder.is_dir() and all(_bookkeeping(name) for name in os.listdir(folder))


def _bookkeeping(name: str) -> bool:
    return name in (MANIFEST, LOCK) or _TEMP.match(name) is not None


def _record(path: Path) -> None:
    entry = _fingerprint(path)
    if entry is not None:
        _note(path, entry)


def _note(path: Path, entry: dict | None, keep: bool = False, forget: str = "") -> None:
    """``entry`` is ``path``'s fingerprint in its folder's manifest; ``keep``: the one noted before stays valid
    too (until the replacement is done); ``forget``: a temporary's name to drop (a folder noted when made)."""

    def change(manifest: dict) -> None:
        entries = manifest["entries"]
        entries.pop(forget, None)
        earlier = [e for e in _fingerprints(entries.get(path.name)) if e != entry] if keep else []
        entries[path.name] = [entry, *earlier]

    _update_manifest(path.parent, change)


def _fingerprints(noted: object) -> list:
    return noted if isinstance(noted, list) else [] if noted is None else [noted]


def _fingerprint(path: Path) -> dict | None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if path.is_dir() and (path / MANIFEST).exists():
        return {"kind": "dir"}  # owned by its own manifest
    if path.is_dir():
        return {"kind": "tree", "mtime_ns": st.st_mtime_ns}
    return {"kind": "file", "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _owned(path: Path) -> bool:
    if path.is_dir() and not path.is_symlink() and _read_manifest(path)["created"]:
        return all(_bookkeeping(child.name) or _owned(child) for child in path.iterdir())
    noted = _fingerprints(_read_manifest(path.parent)["entries"].get(path.name))
    return _fingerprint(path) in noted


def _read_manifest(folder: Path) -> dict:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {"created": False, "entries": {}}
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        return {"created": False, "entries": {}}
    return {"created": bool(data.get("created")), "entries": data["entries"]}


def _update_manifest(folder: Path, change: Callable[[dict], object]) -> None:
    """Read, change and rewrite ``folder``'s manifest under a lock on the folder (concurrent writers)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        manifest = _read_manifest(folder)
        change(manifest)
        tmp = folder / f".earthport.earthport-tmp-{os.getpid()}.json"
        try:
            tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
            os.replace(tmp, folder / MANIFEST)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    finally:
        os.close(fd)


def _clean_stale_temps(folder: Path) -> None:
    """Remove temporaries that a process now gone left in ``folder`` (a kill, a power cut)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = _TEMP.match(name)
        if match and not _alive(int(match.group(1))):
            _remove(folder / name)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
