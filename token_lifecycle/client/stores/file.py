"""A token store in a directory: shares one pair between the processes of one host.

For N worker processes (gunicorn, uWSGI, Celery) on one machine without Redis.
Each key is a JSON file replaced atomically (written to a temporary file in the
same directory, fsynced, then ``os.replace``), so a reader sees the old pair or
the new one, never half of one. The lock is ``fcntl.flock`` on a separate
``.lock`` file: exclusive across processes *and* across threads (each
acquisition opens its own file description), and released by the kernel if
its holder dies, so a crashed worker cannot wedge the others.

Tokens are stored in clear, readable by the owner only (files 0600, the
directory created 0700): put the directory where only the service's user can
read (``/run/<service>/tokens``, not ``/tmp`` shared with other users). A
directory that another user owns, or that its group or others may write to,
is refused (:class:`PermissionError`): whoever can write there could plant a
pair of their own for the service to use, or swap the lock file.
POSIX only (``fcntl``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..tokens import TokenSet
from .base import TokenStore, wait_until

logger = logging.getLogger("token_lifecycle.client")


class FileTokenStore(TokenStore):
    """One ``<key>.json`` and one ``<key>.lock`` per key in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _refuse_if_others_can_write(self.directory)

    def _path(self, key: str, suffix: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"unsuitable store key for a file name: {key!r}")
        return self.directory / f"{key}{suffix}"

    def load(self, key: str) -> TokenSet | None:
        path = self._path(key, ".json")
        try:
            return TokenSet.from_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            logger.warning("Ignoring unreadable token file for %s: %s", key, error)
            return None

    def save(self, key: str, tokens: TokenSet) -> None:
        target = self._path(key, ".json")
        descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{key}.")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                stream.write(tokens.to_json())
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        self._sync_directory()

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key, ".json").unlink()
        self._sync_directory()

    @contextlib.contextmanager
    def lock(self, key: str, timeout: float) -> Iterator[bool]:
        descriptor = os.open(self._path(key, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            acquired = wait_until(lambda: _try_flock(descriptor), timeout)
            try:
                yield acquired
            finally:
                if acquired:
                    fcntl.flock(descriptor, fcntl.LOCK_UN)
        finally:
            os.close(descriptor)

    def _sync_directory(self) -> None:
        # The rename itself must reach the disk for the new pair to survive a crash.
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _refuse_if_others_can_write(directory: Path) -> None:
    """Refuse rather than repair: a chmod now would not undo what others put there before."""
    status = directory.stat()
    if status.st_uid != os.geteuid():
        raise PermissionError(
            f"Token store directory {directory} belongs to uid {status.st_uid}, not to "
            f"this process (uid {os.geteuid()}): use a directory of the service's own user."
        )
    if status.st_mode & 0o022:
        raise PermissionError(
            f"Token store directory {directory} is writable by its group or by others "
            f"(mode {stat.S_IMODE(status.st_mode):o}): run `chmod go-w {directory}`, "
            "or use a directory only the service's user can write to."
        )


def _try_flock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
