"""A local append-only journal: every audited record is on disk before its response is sent.

Any record kind goes in (``"decision"``, ``"outcome"``, ``"event"``, ...): :meth:`Journal.append` writes one
record to this process's current segment file with one ``write`` system call and returns the segment's number;
the caller hands the record and that number to the audit writer, which inserts it into the audit database and
then calls :meth:`Journal.done`. A segment that is full is closed and a new one begun;
a closed segment whose records are all in the database is deleted, so the journal holds only what the database
does not have yet (plus, at most, the current segment).

Each worker process holds an exclusive ``flock`` on its own segments. A process that dies — SIGKILL, out of
memory, a crash — releases its locks; the next worker that starts (:meth:`Journal.adopt_orphans`) takes over
every segment no live process holds, and the audit writer writes their records (records already in the database
are recognised by their key and skipped). Several workers starting at once adopt each orphan exactly once.

Durability: a record is journalled when ``write`` returns, that is in the operating system's page cache. That
survives the death of the process (SIGKILL at any moment), but not a power loss or kernel crash unless
``fsync=True`` (``CRM_JOURNAL_FSYNC=true``), which makes every append wait for the disk (``fdatasync``): the
record then survives power loss too, at the cost of one disk flush per audited request.

A record is written as an 8-hex-digit header length, a JSON header (kind, the non-text fields, and the name and
byte length of each text field), the text fields' UTF-8 bytes one after another, and a newline. Audit rows are
mostly long JSON texts (the response, the indicator values): written as they are, they are not escaped a second
time, which costs a quarter of a JSON dump of the whole row.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

log = logging.getLogger("crm.journal")
SEGMENT_BYTES = 32 * 1024 * 1024


def encode(kind: str, record: dict) -> bytes:
    """One journal record: header length, JSON header, the text fields' bytes as they are, a newline."""
    texts: list[list] = []
    parts: list[bytes] = []
    others: dict = {}
    for name, value in record.items():
        if isinstance(value, str):
            raw = value.encode()
            texts.append([name, len(raw)])
            parts.append(raw)
        else:
            others[name] = value
    header = {"kind": kind, "fields": others, "texts": texts}
    try:
        header = orjson.dumps(header)
    except TypeError:  # str-subclass keys (SQLAlchemy's column names) or numpy scalars: orjson's lenient path
        header = orjson.dumps(header, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    return b"%08x" % len(header) + header + b"".join(parts) + b"\n"


def decode(data: bytes) -> tuple[list[tuple[str, dict]], bool]:
    """The (kind, record) pairs of a segment's bytes, and whether the last one was complete."""
    records: list[tuple[str, dict]] = []
    position = 0
    while position < len(data):
        try:
            size = int(data[position:position + 8], 16)
            header = orjson.loads(data[position + 8:position + 8 + size])
            record = dict(header["fields"])
            at = position + 8 + size
            for name, length in header["texts"]:
                if at + length > len(data):
                    return records, False
                record[name] = data[at:at + length].decode()
                at += length
        except (ValueError, KeyError, TypeError):
            return records, False
        if data[at:at + 1] != b"\n":
            return records, False
        records.append((header["kind"], record))
        position = at + 1
    return records, True


@dataclass
class _Segment:
    number: int
    path: Path
    fd: int
    outstanding: int = 0  # appended and not yet in the database
    size: int = 0
    closed: bool = False


@dataclass(frozen=True)
class Orphan:
    """A segment left by a process that died, adopted by this one: its segment number and its records."""

    segment: int
    path: Path
    records: list[tuple[str, dict]]  # (kind, record)


class Journal:
    """This process's journal in ``directory`` (one folder shared by every worker on the machine)."""

    def __init__(self, directory: Path, fsync: bool = False, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._segments: dict[int, _Segment] = {}
        self._next = 0
        self._current = self._open_segment()

    # writing --------------------------------------------------------------------------------------------------

    def _open_segment(self) -> _Segment:
        self._next += 1
        path = self.directory / f"{os.getpid()}-{time.time_ns()}-{self._next}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else can hold it
        if self.fsync:
            self._sync_directory()
        segment = _Segment(self._next, path, fd)
        self._segments[segment.number] = segment
        return segment

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, kind: str, record: dict) -> int:
        """Write one record of ``kind`` (a JSON-serialisable dict) and return its segment number, to pass to
        :meth:`done` once the record is in the database. When this returns, a process crash loses nothing."""
        data = encode(kind, record)
        with self._lock:
            segment = self._current
            view = memoryview(data)
            while view:
                view = view[os.write(segment.fd, view):]
            if self.fsync:
                os.fdatasync(segment.fd)
            segment.outstanding += 1
            segment.size += len(data)
            if segment.size >= self.segment_bytes:
                segment.closed = True
                self._current = self._open_segment()
            return segment.number

    def done(self, segments: Iterable[int | None]) -> None:
        """Records of these segments (one number per record) are in the database; a closed segment with nothing
        outstanding is deleted."""
        with self._lock:
            for number in segments:
                if number is None:
                    continue
                segment = self._segments.get(number)
                if segment is None:
                    continue
                segment.outstanding -= 1
                if segment.closed and segment.outstanding <= 0:
                    self._drop(segment)

    def _drop(self, segment: _Segment) -> None:
        self._segments.pop(segment.number, None)
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        os.close(segment.fd)  # the lock goes with the last descriptor, after the file is gone

    @property
    def outstanding(self) -> int:
        with self._lock:
            return sum(s.outstanding for s in self._segments.values())

    # recovery ---------------------------------------------------------------------------------------------------

    def adopt_orphans(self) -> list[Orphan]:
        """Take over every segment in the folder that no live process holds (its writer died): their records,
        for the audit writer to write; each segment is deleted once :meth:`done` has been called for all of them.
        A last line cut short by the crash was never acknowledged (its response needs the whole write) and is
        skipped."""
        orphans = []
        for path in sorted(self.directory.glob("*.jsonl")):
            if any(s.path == path for s in self._segments.values()):
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live worker's segment
                continue
            if not path.exists():  # adopted and finished by another worker between the listing and the lock
                os.close(fd)
                continue
            with open(fd, "rb", closefd=False) as f:
                records, complete = decode(f.read())
            if not complete:
                log.warning("journal %s: an incomplete last record (cut by a crash) skipped", path.name)
            with self._lock:
                self._next += 1
                segment = _Segment(self._next, path, fd, outstanding=len(records), closed=True)
                self._segments[segment.number] = segment
                if not records:
                    self._drop(segment)
                    continue
            orphans.append(Orphan(segment.number, path, records))
            log.warning("journal: %s records of a stopped process adopted from %s", len(records), path.name)
        return orphans

    def close(self) -> None:
        """Stop journalling: segments whose records are all written are deleted; the others stay for the next
        start to adopt."""
        with self._lock:
            for segment in list(self._segments.values()):
                if segment.outstanding <= 0:
                    self._drop(segment)
                else:
                    os.close(segment.fd)
                    self._segments.pop(segment.number, None)
