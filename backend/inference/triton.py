"""`TritonClassifier`: the `Classifier` interface served by NVIDIA Triton Inference Server.

* gRPC by default, HTTP as an option (``protocol``); ``predict_batch`` is synchronous (thread-safe: one
  client per thread) and ``predict_batch_async`` uses tritonclient's asyncio clients, so one backend
  process can keep many requests in flight.
* Input/output names, shapes, datatypes and ``max_batch_size`` come from the served model's metadata
  and config (never hard-coded); when the model has a ``class_maps`` output (class-activation maps),
  both outputs are requested and each `Prediction` carries its top class's map; labels from the config parameter ``labels`` (written by the derived
  repository and the production config) or, failing that, from the ``labels`` argument.
* Every call has a deadline (``timeout_s``). What is safe to retry is retried (inference is a pure
  function, so connection failures, deadlines and "model not ready" are); the budget is
  ``retries`` attempts with a short exponential backoff.
* Errors: `InferenceUnavailable` (server down, model not ready/not loaded, deadline) and
  `InferenceRejected` (model not in the repository, wrong dtype/shape). ``ready()`` says why not.
* Each `Prediction` carries the model name and version that actually served it (from the response).

Configuration: the ``triton_*`` fields of `backend.config.Settings` (``DERMALINK_TRITON_URL``, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from backend.inference.base import (
    CAM_OUTPUT,
    Classifier,
    InferenceError,
    InferenceRejected,
    InferenceUnavailable,
    ModelInfo,
    Prediction,
    top_class_maps,
)

Protocol = Literal["grpc", "http"]

_NP_DTYPES = {
    "UINT8": np.uint8,
    "INT8": np.int8,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
# Triton's gRPC status codes that mean "the request is wrong"; everything else may succeed later.
_REJECT_GRPC = {"StatusCode.INVALID_ARGUMENT", "StatusCode.NOT_FOUND", "StatusCode.UNIMPLEMENTED"}
_UNREACHABLE = "cannot reach Triton"
_NOT_READY_HINTS = ("not at ready state", "has no available versions", "is not ready", "unavailable")


@dataclass(frozen=True)
class _Meta:
    name: str
    version: str
    input_name: str
    input_datatype: str
    input_shape: tuple[int, ...]  # with the batch dimension (-1)
    output_name: str
    labels: tuple[str, ...]
    max_batch_size: int
    output_width: int = -1
    maps_name: str | None = None  # the class-activation maps output, when the model has one


def _message(exc: BaseException) -> str:
    msg = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    return (msg or type(exc).__name__).strip()


def _classify(exc: BaseException, where: str) -> InferenceError:
    """Map any client/transport exception to `InferenceUnavailable` or `InferenceRejected`."""
    if isinstance(exc, InferenceError):
        return exc
    from tritonclient.utils import InferenceServerException

    if isinstance(exc, InferenceServerException):
        status, msg = str(exc.status() or ""), _message(exc)
        lowered = msg.lower()
        if "deadline" in lowered or status == "StatusCode.DEADLINE_EXCEEDED":
            return InferenceUnavailable(f"Triton at {where} did not answer within the deadline: {msg}")
        if any(h in lowered for h in _NOT_READY_HINTS):
            return InferenceUnavailable(f"Triton at {where}: model not ready: {msg}")
        if "unknown model" in lowered or "is not found" in lowered:
            return InferenceRejected(f"Triton at {where}: {msg}")
        if status in _REJECT_GRPC or status == "400":
            return InferenceRejected(f"Triton at {where} rejected the request: {msg}")
        if status == "StatusCode.UNAVAILABLE":
            return InferenceUnavailable(f"{_UNREACHABLE} at {where}: {msg}")
        return InferenceUnavailable(f"Triton at {where} failed ({status or 'no status'}): {msg}")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return InferenceUnavailable(f"Triton at {where} did not answer within the deadline")
    return InferenceUnavailable(f"{_UNREACHABLE} at {where}: {type(exc).__name__}: {_message(exc)}")


def _int(v: Any) -> int:
    return int(v)  # gRPC JSON renders int64 as strings


class TritonClassifier(Classifier):
    def __init__(
        self,
        url: str = "127.0.0.1:8001",
        model_name: str = "ham10000_mobilenetv2",
        *,
        version: str = "",
        protocol: Protocol = "grpc",
        timeout_s: float = 10.0,
        retries: int = 3,
        labels: tuple[str, ...] | None = None,
        validate: bool = True,
    ) -> None:
        if protocol not in ("grpc", "http"):
            raise ValueError(f"protocol must be 'grpc' or 'http', not {protocol!r}")
        if "://" in url:
            url = url.split("://", 1)[1]
        self.url, self.model_name, self.version, self.protocol = url, model_name, str(version or ""), protocol
        self.timeout_s, self.retries, self.validate = timeout_s, max(1, retries), validate
        self._fallback_labels = tuple(labels) if labels else None
        self._meta: _Meta | None = None  # current metadata; None: read it again before the next call
        self._last_meta: _Meta | None = None  # the last metadata seen, for `info` during an outage
        self._lock = threading.Lock()
        self._local = threading.local()
        self._sync_clients: list[Any] = []
        self._aio: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> asyncio client

    @classmethod
    def from_settings(cls, settings: Any = None) -> TritonClassifier:
        """From the application's `Settings` (``DERMALINK_TRITON_*``): the model name is ``triton_model``
        or else ``model_name``; labels fall back to ``triton_labels_file``, else to
        ``<model_repository>/<model>/labels.txt`` when present."""
        from pathlib import Path

        from backend.config import get_settings

        s = settings or get_settings()
        model = s.triton_model or s.model_name
        labels_file = Path(s.triton_labels_file) if s.triton_labels_file else None
        if labels_file is None and (Path(s.model_repository) / model / "labels.txt").is_file():
            labels_file = Path(s.model_repository) / model / "labels.txt"
        labels = None
        if labels_file is not None:
            labels = tuple(x.strip() for x in labels_file.read_text().splitlines() if x.strip())
        return cls(
            s.triton_url,
            model,
            version=s.triton_version,
            protocol=s.triton_protocol,
            timeout_s=s.triton_timeout_s,
            retries=s.triton_retries,
            labels=labels,
        )

    # ------------------------------------------------------------------ clients
    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            if self.protocol == "grpc":
                import tritonclient.grpc as grpcclient

                client = grpcclient.InferenceServerClient(self.url, channel_args=self._channel_args())
            else:
                import tritonclient.http as httpclient

                client = httpclient.InferenceServerClient(
                    self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
                )
            self._local.client = client
            with self._lock:
                self._sync_clients.append(client)
        return client

    def _aio_client(self):
        loop = asyncio.get_running_loop()
        client = self._aio.get(loop)
        if client is None:
            if self.protocol == "grpc":
                import tritonclient.grpc.aio as grpcaio

                client = grpcaio.InferenceServerClient(self.url, channel_args=self._channel_args())
            else:
                import tritonclient.http.aio as httpaio

                client = httpaio.InferenceServerClient(self.url, conn_timeout=self.timeout_s)
            self._aio[loop] = client
        return client

    @staticmethod
    def _channel_args() -> list[tuple[str, Any]]:
        # Reconnect quickly after a Triton restart instead of gRPC's default backoff (up to 120 s).
        return [
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]

    def _where(self) -> str:
        return f"{self.protocol}://{self.url} (model {self.model_name!r})"

    # ------------------------------------------------------------------ metadata
    def _not_ready_reason(self, index: list[dict]) -> InferenceError:
        entries = [e for e in index if e.get("name") == self.model_name]
        if not entries:
            return InferenceRejected(
                f"model {self.model_name!r} is not in the repository of Triton at {self.url}"
            )
        if self.version:
            entries = [e for e in entries if str(e.get("version", "")) == self.version] or entries
        detail = "; ".join(
            f"version {e.get('version') or '?'}: {e.get('state') or 'UNKNOWN'}"
            + (f" ({e['reason']})" if e.get("reason") else "")
            for e in entries
        )
        return InferenceUnavailable(
            f"model {self.model_name!r} is not ready on Triton at {self.url}: {detail}"
        )

    def _build_meta(self, metadata: dict, config: dict) -> _Meta:
        """Tensors from the metadata; labels from the config's ``labels`` parameter when it has one
        (otherwise empty here: `_with_labels` asks the server or falls back to the given labels)."""
        config = config.get("config", config)
        inputs, outputs = metadata.get("inputs", []), metadata.get("outputs", [])
        if len(inputs) != 1:
            raise InferenceRejected(
                f"{self._where()}: expected one input tensor, the model has {len(inputs)}"
            )
        if not outputs:
            raise InferenceRejected(f"{self._where()}: the model has no outputs")
        label_param = (config.get("parameters") or {}).get("labels", {}).get("string_value", "")
        labels = tuple(x.strip() for x in label_param.split(",") if x.strip())
        maps = next((o for o in outputs if o["name"] == CAM_OUTPUT), None)
        candidates = [o for o in outputs if o is not maps]
        if not candidates:
            raise InferenceRejected(f"{self._where()}: the model has no probabilities output")
        out = candidates[0]
        if len(candidates) > 1:  # several outputs: the probabilities are the one with one value per label
            want = len(labels or self._fallback_labels or ())
            out = next((o for o in candidates if o.get("shape") and _int(o["shape"][-1]) == want), out)
        inp = inputs[0]
        if inp["datatype"] not in _NP_DTYPES:
            raise InferenceRejected(f"{self._where()}: unsupported input datatype {inp['datatype']}")
        versions = metadata.get("versions") or [""]
        return _Meta(
            name=metadata.get("name", self.model_name),
            version=self.version or str(versions[-1]),
            input_name=inp["name"],
            input_datatype=inp["datatype"],
            input_shape=tuple(_int(d) for d in inp["shape"]),
            output_name=out["name"],
            labels=labels,
            max_batch_size=_int(config.get("max_batch_size", 0) or 0),
            output_width=_int(out["shape"][-1]) if out.get("shape") else -1,
            maps_name=maps["name"] if maps else None,
        )

    def _classification_request(self, meta: _Meta):
        """A zero image asking Triton's classification extension for every class: its answers are
        ``score:index:label`` strings with the labels of the output's ``label_filename``."""
        dims = meta.input_shape[1:] if meta.max_batch_size else meta.input_shape
        if meta.output_width < 1 or any(d < 1 for d in dims):
            return None
        mod = self._module()
        x = np.zeros((1, *dims) if meta.max_batch_size else dims, dtype=_NP_DTYPES[meta.input_datatype])
        inp = mod.InferInput(meta.input_name, list(x.shape), meta.input_datatype)
        inp.set_data_from_numpy(x)
        extra = {"binary_data": False} if self.protocol == "http" else {}
        out = mod.InferRequestedOutput(meta.output_name, class_count=meta.output_width, **extra)
        return [inp], [out]

    def _parse_classification(self, result, meta: _Meta) -> tuple[str, ...]:
        entries = np.asarray(result.as_numpy(meta.output_name)).reshape(-1)
        labels: dict[int, str] = {}
        for entry in entries:
            parts = (entry.decode() if isinstance(entry, bytes) else str(entry)).split(":", 2)
            if len(parts) == 3 and parts[2]:
                labels[int(parts[1])] = parts[2]
        if sorted(labels) != list(range(meta.output_width)):
            return ()
        return tuple(labels[i] for i in range(meta.output_width))

    def _finish_meta(self, meta: _Meta, server_labels: tuple[str, ...]) -> _Meta:
        labels = meta.labels or server_labels or self._fallback_labels
        if not labels:
            raise InferenceRejected(
                f"{self._where()}: no labels: the model config has no `labels` parameter or `label_filename`, "
                "and no labels file was given (DERMALINK_TRITON_LABELS_FILE)"
            )
        if meta.output_width not in (-1, len(labels)):
            raise InferenceRejected(
                f"{self._where()}: output {meta.output_name} has {meta.output_width} classes, "
                f"but there are {len(labels)} labels"
            )
        return replace(meta, labels=tuple(labels))

    def _fetch_meta(self) -> _Meta:
        client = self._client()
        kw = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        js = {"as_json": True} if self.protocol == "grpc" else {}
        try:
            if not client.is_model_ready(self.model_name, self.version, **kw):
                index = client.get_model_repository_index(**js, **kw)
                raise self._not_ready_reason(index.get("models", []) if isinstance(index, dict) else index)
            metadata = client.get_model_metadata(self.model_name, self.version, **js, **kw)
            config = client.get_model_config(self.model_name, self.version, **js, **kw)
            meta = self._build_meta(metadata, config)
            server_labels: tuple[str, ...] = ()
            request = None if meta.labels else self._classification_request(meta)
            if request:
                result = client.infer(
                    self.model_name, request[0], model_version=self.version, outputs=request[1], **kw
                )
                server_labels = self._parse_classification(result, meta)
        except Exception as exc:
            err = _classify(exc, self._where())
            self._after_failure(err)
            raise err from exc
        return self._finish_meta(meta, server_labels)

    async def _fetch_meta_async(self) -> _Meta:
        client = self._aio_client()
        kw = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        js = {"as_json": True} if self.protocol == "grpc" else {}
        try:
            if not await client.is_model_ready(self.model_name, self.version, **kw):
                index = await client.get_model_repository_index(**js, **kw)
                raise self._not_ready_reason(index.get("models", []) if isinstance(index, dict) else index)
            metadata = await client.get_model_metadata(self.model_name, self.version, **js, **kw)
            config = await client.get_model_config(self.model_name, self.version, **js, **kw)
            meta = self._build_meta(metadata, config)
            server_labels: tuple[str, ...] = ()
            request = None if meta.labels else self._classification_request(meta)
            if request:
                result = await client.infer(
                    self.model_name, request[0], model_version=self.version, outputs=request[1], **kw
                )
                server_labels = self._parse_classification(result, meta)
        except Exception as exc:
            err = _classify(exc, self._where())
            await self._after_failure_async(err)
            raise err from exc
        return self._finish_meta(meta, server_labels)

    def _after_failure(self, err: InferenceError) -> None:
        """After an outage: re-read the metadata, and drop this thread's client when the server could not
        be reached, so the next call opens a fresh connection instead of waiting out gRPC's reconnect
        backoff on a channel that failed while Triton was down."""
        if isinstance(err, InferenceUnavailable):
            self._meta = None
            if _UNREACHABLE in str(err):
                client = getattr(self._local, "client", None)
                self._local.client = None
                if client is not None:
                    with self._lock:
                        if client in self._sync_clients:
                            self._sync_clients.remove(client)
                    with contextlib.suppress(Exception):
                        client.close()

    async def _after_failure_async(self, err: InferenceError) -> None:
        if isinstance(err, InferenceUnavailable):
            self._meta = None
            if _UNREACHABLE in str(err):
                client = self._aio.pop(asyncio.get_running_loop(), None)
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.close()

    def _metadata(self) -> _Meta:
        meta = self._meta
        if meta is None:
            meta = self._meta = self._last_meta = self._fetch_meta()
        return meta

    async def _metadata_async(self) -> _Meta:
        meta = self._meta
        if meta is None:
            meta = self._meta = self._last_meta = await self._fetch_meta_async()
        return meta

    @property
    def info(self) -> ModelInfo:
        """The served model; while Triton cannot answer, the last one seen (or the configured name with
        ``extra["available"] = False``): reading it never raises, so `/readyz` can always report."""
        try:
            meta = self._metadata()
        except InferenceError as exc:
            meta = self._last_meta
            if meta is None:
                return ModelInfo(
                    name=self.model_name,
                    version=self.version or "unknown",
                    labels=self._fallback_labels or (),
                    extra={
                        "server": self.url,
                        "protocol": self.protocol,
                        "available": False,
                        "error": str(exc),
                    },
                )
        return ModelInfo(
            name=meta.name,
            version=meta.version,
            labels=meta.labels,
            extra={
                "server": self.url,
                "protocol": self.protocol,
                "input": meta.input_name,
                "output": meta.output_name,
                "class_maps": meta.maps_name,
                "max_batch_size": meta.max_batch_size,
                "available": meta is self._meta,
            },
        )

    def ready(self) -> tuple[bool, str]:
        """Whether *this model* can answer (Triton's server-wide readiness also counts unrelated models)."""
        self._meta = None  # re-read: the served version or config may have changed
        try:
            meta = self._metadata()
        except Exception as exc:  # noqa: BLE001 - ready() reports, never raises
            self._meta = None
            return False, str(_classify(exc, self._where()))
        return True, f"Triton at {self.url} serves {meta.name} version {meta.version} ({self.protocol})"

    # ------------------------------------------------------------------ inference
    def _check(self, images: np.ndarray, meta: _Meta) -> None:
        if not isinstance(images, np.ndarray):
            raise InferenceRejected(f"expected a numpy array, got {type(images).__name__}")
        want = np.dtype(_NP_DTYPES[meta.input_datatype])
        if images.dtype != want:
            raise InferenceRejected(
                f"{self._where()} expects {want} pixels ({meta.input_datatype}), got {images.dtype}"
            )
        shape = list(meta.input_shape)
        if images.ndim != len(shape) or any(e != -1 and e != g for e, g in zip(shape[1:], images.shape[1:])):
            raise InferenceRejected(
                f"{self._where()} expects input {meta.input_name} of shape {shape}, got {list(images.shape)}"
            )

    def _chunks(self, images: np.ndarray, meta: _Meta) -> list[np.ndarray]:
        step = meta.max_batch_size or len(images) or 1
        return [images[i : i + step] for i in range(0, len(images), step)]

    def _module(self):
        if self.protocol == "grpc":
            import tritonclient.grpc as mod
        else:
            import tritonclient.http as mod
        return mod

    def _inputs(self, chunk: np.ndarray, meta: _Meta):
        mod = self._module()
        try:
            inp = mod.InferInput(meta.input_name, list(chunk.shape), meta.input_datatype)
            names = [meta.output_name] + ([meta.maps_name] if meta.maps_name else [])
            if self.protocol == "http":
                inp.set_data_from_numpy(np.ascontiguousarray(chunk), binary_data=True)
                outs = [mod.InferRequestedOutput(n, binary_data=True) for n in names]
            else:
                inp.set_data_from_numpy(np.ascontiguousarray(chunk))
                outs = [mod.InferRequestedOutput(n) for n in names]
        except Exception as exc:  # tritonclient checks the array against the declared datatype
            raise InferenceRejected(f"{self._where()}: bad input tensor: {_message(exc)}") from exc
        return [inp], outs

    def _predictions(self, result, meta: _Meta, n: int, elapsed_ms: float) -> list[Prediction]:
        probs = result.as_numpy(meta.output_name)
        if probs is None or probs.shape[0] != n:
            raise InferenceUnavailable(
                f"{self._where()} returned {None if probs is None else probs.shape} for {n} images"
            )
        maps = result.as_numpy(meta.maps_name) if meta.maps_name else None
        if maps is not None and maps.shape[0] != n:
            raise InferenceUnavailable(f"{self._where()} returned class maps {maps.shape} for {n} images")
        response = result.get_response()
        if isinstance(response, dict):
            name, version = response.get("model_name", meta.name), response.get("model_version", meta.version)
        else:
            name, version = response.model_name, response.model_version
        per_image = elapsed_ms / max(n, 1)
        return [
            Prediction(
                probabilities={label: float(p) for label, p in zip(meta.labels, row, strict=True)},
                model_name=name,
                model_version=str(version),
                inference_ms=per_image,
                class_map=cam,
            )
            for row, cam in zip(np.asarray(probs, dtype=np.float64), top_class_maps(probs, maps), strict=True)
        ]

    def _retrying(self, cls=Retrying):
        return cls(
            retry=retry_if_exception_type(InferenceUnavailable),
            stop=stop_after_attempt(self.retries) | stop_after_delay(self.timeout_s * self.retries),
            wait=wait_exponential(multiplier=0.1, max=1.0),
            reraise=True,
        )

    def _infer_once(self, images: np.ndarray) -> list[Prediction]:
        meta = self._metadata()
        if self.validate:
            self._check(images, meta)
        client = self._client()
        kw = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        out: list[Prediction] = []
        for chunk in self._chunks(images, meta):
            inputs, outputs = self._inputs(chunk, meta)
            start = time.perf_counter()
            try:
                result = client.infer(
                    self.model_name, inputs, model_version=self.version, outputs=outputs, **kw
                )
            except Exception as exc:
                err = _classify(exc, self._where())
                self._after_failure(err)
                raise err from exc
            out += self._predictions(result, meta, len(chunk), (time.perf_counter() - start) * 1000)
        return out

    def predict_batch(self, images: np.ndarray) -> list[Prediction]:
        if len(images) == 0:
            return []
        for attempt in self._retrying():
            with attempt:
                return self._infer_once(images)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _infer_chunk_async(self, chunk: np.ndarray, meta: _Meta) -> list[Prediction]:
        client = self._aio_client()
        kw = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        inputs, outputs = self._inputs(chunk, meta)
        start = time.perf_counter()
        try:
            result = await client.infer(
                self.model_name, inputs, model_version=self.version, outputs=outputs, **kw
            )
        except Exception as exc:
            err = _classify(exc, self._where())
            await self._after_failure_async(err)
            raise err from exc
        return self._predictions(result, meta, len(chunk), (time.perf_counter() - start) * 1000)

    async def _infer_once_async(self, images: np.ndarray) -> list[Prediction]:
        meta = await self._metadata_async()
        if self.validate:
            self._check(images, meta)
        parts = await asyncio.gather(*(self._infer_chunk_async(c, meta) for c in self._chunks(images, meta)))
        return [p for part in parts for p in part]

    async def predict_batch_async(self, images: np.ndarray) -> list[Prediction]:
        """Like `predict_batch`, without blocking the event loop; many calls may be in flight at once."""
        if len(images) == 0:
            return []
        async for attempt in self._retrying(AsyncRetrying):
            with attempt:
                return await self._infer_once_async(images)
        raise AssertionError("unreachable")  # pragma: no cover

    async def ready_async(self) -> tuple[bool, str]:
        self._meta = None
        try:
            meta = await self._metadata_async()
        except Exception as exc:  # noqa: BLE001
            self._meta = None
            return False, str(_classify(exc, self._where()))
        return True, f"Triton at {self.url} serves {meta.name} version {meta.version} ({self.protocol})"

    async def aclose(self) -> None:
        """Close the asyncio client of the running loop."""
        client = self._aio.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    def close(self) -> None:
        with self._lock:
            clients, self._sync_clients = self._sync_clients, []
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()
        self._local = threading.local()
