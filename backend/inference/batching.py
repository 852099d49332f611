"""A small in-process dynamic batcher: concurrent requests share one model call.

Each caller hands in its ``[n, 224, 224, 3]`` pixels and blocks. One thread takes what is waiting,
holds the first request at most ``max_delay`` for company (like Triton's ``max_queue_delay``), and runs
one ``predict_batch`` over up to ``max_batch`` images. The delay is skipped when no other submission is
being prepared (`expect`), so a lone request never waits for company that is not coming. While a batch
runs, new requests queue up and form the next batch, so under load the model runs at its batched speed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from backend.inference.base import Classifier, Prediction


@dataclass
class _Request:
    classifier: Classifier
    pixels: np.ndarray
    queued_at: float = field(default_factory=time.perf_counter)
    done: threading.Event = field(default_factory=threading.Event)
    result: list[Prediction] | None = None
    error: BaseException | None = None


class DynamicBatcher:
    def __init__(
        self,
        *,
        max_batch: int = 16,
        max_delay: float = 0.002,
        observe: Callable[[int, float, float], None] | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.observe = observe  # (images, seconds its first request waited, seconds of inference): metrics
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._expected = 0  # submissions being prepared that will soon ask for inference
        self._thread: threading.Thread | None = None

    @contextmanager
    def expect(self) -> Iterator[None]:
        """Announce a request that will call `predict` soon (while its images are being decoded)."""
        with self._cond:
            self._expected += 1
        try:
            yield
        finally:
            with self._cond:
                self._expected -= 1
                self._cond.notify_all()

    def predict(self, classifier: Classifier, pixels: np.ndarray) -> list[Prediction]:
        return self.submit(classifier, pixels)()

    def submit(self, classifier: Classifier, pixels: np.ndarray) -> Callable[[], list[Prediction]]:
        """Queue ``pixels`` and return at once; calling the result waits for the predictions (or raises
        the inference error), so the caller can do I/O (the encrypted blob write) meanwhile."""
        request = _Request(classifier, pixels)
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="dermalink-batcher", daemon=True)
                self._thread.start()
            self._queue.append(request)
            self._cond.notify_all()
        # Hand the GIL to the batcher thread now, so the model starts before this thread goes on.
        time.sleep(0)

        def result() -> list[Prediction]:
            request.done.wait()
            if request.error is not None:
                raise request.error
            assert request.result is not None
            return request.result

        return result

    def _take(self) -> list[_Request]:
        with self._cond:
            while not self._queue:
                self._cond.wait()
            deadline = self._queue[0].queued_at + self.max_delay
            while self._size() < self.max_batch and self._expected > 0:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            taken, size = [], 0
            classifier = self._queue[0].classifier
            while self._queue and self._queue[0].classifier is classifier:
                if taken and size + len(self._queue[0].pixels) > self.max_batch:
                    break
                request = self._queue.popleft()
                taken.append(request)
                size += len(request.pixels)
            return taken

    def _size(self) -> int:
        return sum(len(r.pixels) for r in self._queue)

    def _loop(self) -> None:
        while True:
            batch = self._take()
            start = time.perf_counter()
            try:
                pixels = np.concatenate([r.pixels for r in batch]) if len(batch) > 1 else batch[0].pixels
                predictions = batch[0].classifier.predict_batch(pixels)
                if self.observe:
                    self.observe(len(pixels), start - batch[0].queued_at, time.perf_counter() - start)
            except BaseException as exc:  # noqa: BLE001 - each waiting caller gets the error; the loop lives on
                for request in batch:
                    request.error = exc
                    request.done.set()
                continue
            start = 0
            for request in batch:
                request.result = predictions[start : start + len(request.pixels)]
                start += len(request.pixels)
                request.done.set()
