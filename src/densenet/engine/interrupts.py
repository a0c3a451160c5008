"""Turn SIGINT/SIGTERM into a polite request: the run saves its state and exits cleanly."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType


class GracefulInterrupts:
    """Context manager that records SIGINT/SIGTERM instead of dying mid-write.

    The first signal sets :attr:`requested`: the training loop stops after the current batch and
    saves the batches done so far. A second signal raises ``KeyboardInterrupt`` at once. Only
    installed in the main thread.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> GracefulInterrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
