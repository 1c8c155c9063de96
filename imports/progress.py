"""Progress of an import run: bytes read of the files, records and patients done.

The Importer owns one ProgressTracker. Readers open their files through it,
the Importer ticks it once per record and after each saved chunk, and it
calls the run's listener at most once per interval with an ImportProgress,
and once more at the end.
A tick costs one clock reading, so the import does not slow down.
"""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class ImportProgress:
    """A snapshot of a run's progress: counts only, never patient data."""

    bytes_done: int
    bytes_total: int
    records_done: int
    patients_done: int
    # True for the last snapshot, sent once every file has been dealt with.
    final: bool = False

    @property
    def fraction(self) -> float:
        if self.bytes_total <= 0:
            return 1.0 if self.final else 0.0
        return min(1.0, self.bytes_done / self.bytes_total)


ProgressListener = Callable[[ImportProgress], None]


class ProgressTracker:
    """Count the bytes read of every planned file and report them now and then.

    ``bytes_total`` is the size of every file to read. A file that the
    second pass reads again, for Appointments and Groups, is planned again
    once the first pass has read it, so the total grows then. An appointment
    CSV counts twice too: the first pass reads only its header and counts it
    as done at once. ``counts`` returns (records done, patients done).
    """

    def __init__(
        self,
        listener: ProgressListener | None,
        interval: float,
        counts: Callable[[], tuple[int, int]],
    ):
        self.listener = listener
        self.interval = interval
        self.counts = counts
        self.bytes_total = 0
        # Bytes of the files read to the end, or given up on.
        self.bytes_finished = 0
        # The file being read, and its size when it was started.
        self._handle: BinaryIO | None = None
        self._size = 0
        self._next_report = 0.0

    def plan(self, paths) -> None:
        """Add the sizes of files that are going to be read to the total."""
        for path in paths:
            try:
                self.bytes_total += os.stat(path).st_size
            except OSError:
                # The reader reports the file that cannot be read.
                continue

    def start_file(self, path: Path) -> None:
        """Count the file read before as done, and start on PATH."""
        self.bytes_finished += self._size
        self._handle = None
        try:
            self._size = os.stat(path).st_size
        except OSError:
            self._size = 0
        self.tick()

    def open(self, path: Path) -> BinaryIO:
        """Open the current file for reading, and follow how far it has been read.

        Opening it again, as the NDJSON reader does for a .json file that
        turns out to be NDJSON, starts the count for it over.
        """
        handle = path.open("rb")
        self._handle = handle
        return handle

    def bytes_done(self) -> int:
        done = self.bytes_finished
        handle = self._handle
        if handle is not None:
            if handle.closed:
                done += self._size
            else:
                done += min(handle.tell(), self._size)
        return min(done, self.bytes_total)

    def tick(self) -> None:
        """Report progress if the interval has passed since the last report."""
        if self.listener is None:
            return
        now = time.monotonic()
        if now < self._next_report:
            return
        self._next_report = now + self.interval
        self.listener(self.snapshot())

    def finish(self) -> None:
        """Report once more, with every planned byte counted as read."""
        self.bytes_finished = self.bytes_total
        self._handle = None
        self._size = 0
        if self.listener is not None:
            self.listener(self.snapshot(final=True))

    def snapshot(self, final: bool = False) -> ImportProgress:
        records, patients = self.counts()
        return ImportProgress(
            bytes_done=self.bytes_done(),
            bytes_total=self.bytes_total,
            records_done=records,
            patients_done=patients,
            final=final,
        )
