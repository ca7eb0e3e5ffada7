"""Rich values for ``run.log``: Image, Histogram and Audio here; Table, Text and Html in
``media_table``.

Each is logged like a scalar (``run.log({"samples": runstack.Image(x)})``) and comes back
from ``history()`` as an object of the same class that loads its data. Files (PNG, WAV,
table JSON, HTML) are stored once per content hash under ``<store>/media``.
"""

from __future__ import annotations

import functools
import io
import json
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from runstack.errors import InvalidMetricError

if TYPE_CHECKING:
    from runstack.core.blobs import BlobStore


def _bad(kind: str, value: Any, reason: str) -> InvalidMetricError:
    # The key is not known yet; log() re-raises with it.
    return InvalidMetricError(f"<{kind}>", value, reason)


def _to_numpy(value: Any) -> Any:
    import numpy as np

    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


MAX_BINS = 8192
MAX_CHANNELS = 256
MEDIA_TYPES: dict[str, type[Media]] = {}  # kind -> class, filled as subclasses are defined


def _deferred(init: Any) -> Any:
    """Keep a constructor's validation error until log(), which knows the key to name."""

    @functools.wraps(init)
    def wrapper(self: Media, *args: Any, **kwargs: Any) -> None:
        try:
            caption = kwargs.get("caption")
            if caption is not None and not isinstance(caption, str):
                raise _bad(self.kind, caption, "caption must be a str")
            init(self, *args, **kwargs)
            self._error = None
        except InvalidMetricError as exc:
            self._error = exc
        except (TypeError, ValueError, OverflowError, MemoryError) as exc:  # numpy/PIL refusing the input
            self._error = _bad(self.kind, args[0] if args else kwargs, f"{type(exc).__name__}: {exc}")

    return wrapper


class Media:
    """Base class: a value stored as a reference in the history.

    Invalid input (wrong shape, NaN pixels, ragged rows, ...) is reported when the value
    is logged, by an InvalidMetricError naming the key.
    """

    kind: ClassVar[str]
    _path: Path | None = None
    _error: InvalidMetricError | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        MEDIA_TYPES[cls.kind] = cls

    @property
    def path(self) -> Path | None:
        """The stored file (for media read back from a store)."""
        return self._path

    def encode(self, blobs: BlobStore) -> dict[str, Any]:
        raise NotImplementedError

    def checked_encode(self, key: str, blobs: BlobStore) -> dict[str, Any]:
        """Store the value and return its reference, or raise the deferred error naming ``key``."""
        if self._error is not None:
            raise InvalidMetricError(key, self._error.value, self._error.reason)
        return self.encode(blobs)

    @classmethod
    def decode(cls, ref: dict[str, Any], blobs: BlobStore) -> Media:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._identity() == other._identity()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(json.dumps(self._identity(), sort_keys=True, default=str))

    def _identity(self) -> Any:
        return vars(self)


class Image(Media):
    """An image from a numpy array (HxW, HxWxC with C in 1/3/4), a PIL image or a torch CHW tensor.

    Float arrays must lie in [0, 1] (scaled to 0-255) or [0, 255]; integers in [0, 255].
    Stored as PNG.
    """

    kind = "image"

    @_deferred
    def __init__(self, data: Any = None, caption: str | None = None) -> None:
        self.caption = caption
        self._png: bytes | None = None
        if data is None:
            return
        image = data if type(data).__module__.startswith("PIL") else self._from_array(data)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        self._png = buffer.getvalue()
        self.width, self.height, self.mode = image.width, image.height, image.mode

    @staticmethod
    def _from_array(data: Any) -> Any:
        import numpy as np
        from PIL import Image as PILImage

        torch_input = type(data).__module__.startswith("torch")
        array = _to_numpy(data)
        if array.size == 0:
            raise _bad("image", data, f"the array is empty (shape {array.shape}): pass an HxW or HxWxC array")
        if torch_input and array.ndim == 3 and array.shape[0] in (1, 3, 4):
            array = array.transpose(1, 2, 0)  # CHW -> HWC
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
            raise _bad("image", data, f"shape {array.shape} is not HxW or HxWxC with C in 1, 3, 4 (torch: CxHxW)")
        if array.dtype == np.bool_:
            array = array.astype(np.uint8) * 255
        elif array.dtype.kind == "f":
            if not np.isfinite(array).all():
                raise _bad("image", data, "the image has NaN or infinite values: clean or clip it first")
            low, high = float(array.min()), float(array.max())
            if low >= 0 and high <= 1:
                array = array * 255
            elif low < 0 or high > 255:
                raise _bad("image", data, f"float values span [{low:g}, {high:g}]: scale them to [0, 1] or [0, 255]")
            array = np.round(array).astype(np.uint8)
        elif array.dtype.kind in "iu":
            if array.min() < 0 or array.max() > 255:
                raise _bad("image", data, "integer values must lie in [0, 255]: scale them or pass floats in [0, 1]")
            array = array.astype(np.uint8)
        else:
            raise _bad("image", data, f"dtype {array.dtype} is not a number type: pass uint8 or float pixels")
        return PILImage.fromarray(np.ascontiguousarray(array))

    def encode(self, blobs: BlobStore) -> dict[str, Any]:
        assert self._png is not None
        digest, _, _ = blobs.put_bytes(self._png)
        return {"_type": self.kind, "sha256": digest, "width": self.width, "height": self.height,
                "mode": self.mode, "caption": self.caption}  # fmt: skip

    @classmethod
    def decode(cls, ref: dict[str, Any], blobs: BlobStore) -> Image:
        image = cls(caption=ref.get("caption"))
        image._path = blobs.path(ref["sha256"])
        image.width, image.height, image.mode = ref["width"], ref["height"], ref["mode"]
        image.sha256 = ref["sha256"]
        return image

    def to_pil(self) -> Any:
        from PIL import Image as PILImage

        source = io.BytesIO(self._png) if self._png is not None else self._path
        with PILImage.open(source) as image:  # type: ignore[arg-type]
            image.load()
            return image.copy()

    def to_numpy(self) -> Any:
        import numpy as np

        return np.asarray(self.to_pil())

    def _identity(self) -> Any:
        return (self.to_numpy().tobytes(), self.caption)

    def __repr__(self) -> str:
        return f"Image({self.width}x{self.height} {self.mode}, caption={self.caption!r})"


class Histogram(Media):
    """A histogram from values (numpy, torch, lists) or precomputed ``(counts, bin_edges)``.

    Non-finite values are left out of the bins and counted in ``nonfinite``.
    """

    kind = "histogram"

    @_deferred
    def __init__(self, values: Any = None, bins: int = 64, np_histogram: tuple[Any, Any] | None = None) -> None:
        import numpy as np

        if np_histogram is not None:
            counts, edges = (_to_numpy(part).ravel() for part in np_histogram)
            if len(edges) != len(counts) + 1:
                raise _bad(
                    "histogram", np_histogram, f"{len(edges)} bin edges for {len(counts)} counts: need one more edge"
                )
            self.counts, self.bins, self.nonfinite = counts.tolist(), edges.tolist(), 0
            return
        if values is None:
            raise _bad("histogram", values, "pass values or np_histogram=(counts, bin_edges)")
        array = _to_numpy(values).astype(np.float64).ravel()
        finite = array[np.isfinite(array)]
        if finite.size == 0:
            raise _bad("histogram", values, "no finite values to bin")
        if not isinstance(bins, int) or isinstance(bins, bool) or not 1 <= bins <= MAX_BINS:
            raise _bad("histogram", bins, f"bins must be an int from 1 to {MAX_BINS}")
        counts, edges = np.histogram(finite, bins=bins)
        self.counts, self.bins, self.nonfinite = counts.tolist(), edges.tolist(), int(array.size - finite.size)

    def encode(self, blobs: BlobStore) -> dict[str, Any]:
        return {"_type": self.kind, "counts": self.counts, "bins": self.bins, "nonfinite": self.nonfinite}

    @classmethod
    def decode(cls, ref: dict[str, Any], blobs: BlobStore) -> Histogram:
        return cls(np_histogram=(ref["counts"], ref["bins"]))._with(nonfinite=ref.get("nonfinite", 0))

    def _with(self, **attrs: Any) -> Histogram:
        vars(self).update(attrs)
        return self

    def __repr__(self) -> str:
        return f"Histogram({len(self.counts)} bins over [{self.bins[0]:g}, {self.bins[-1]:g}])"


class Audio(Media):
    """Audio from a numpy array (frames, or frames x channels) and a sample rate; stored as WAV.

    Floats must lie in [-1, 1]; int16 is stored as is.
    """

    kind = "audio"

    @_deferred
    def __init__(self, data: Any = None, sample_rate: int | None = None, caption: str | None = None) -> None:
        import numpy as np

        self.caption, self._wav = caption, None
        if data is None:
            return
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise _bad("audio", sample_rate, "sample_rate must be a positive int, e.g. 16000")
        array = _to_numpy(data)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2 or array.size == 0:
            raise _bad("audio", data, f"shape {array.shape} is not (frames,) or (frames, channels)")
        if array.shape[1] > MAX_CHANNELS:
            raise _bad("audio", data, f"{array.shape[1]} channels: at most {MAX_CHANNELS} (is the array transposed?)")
        if array.dtype.kind == "f":
            if not np.isfinite(array).all() or np.abs(array).max() > 1:
                raise _bad("audio", data, "float audio must be finite and within [-1, 1]")
            array = np.round(array * 32767).astype("<i2")
        elif array.dtype != np.int16:
            raise _bad("audio", data, f"dtype {array.dtype}: pass float audio in [-1, 1] or int16")
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(array.shape[1])
            out.setsampwidth(2)
            out.setframerate(sample_rate)
            out.writeframes(array.astype("<i2").tobytes())
        self._wav = buffer.getvalue()
        self.sample_rate, self.channels, self.frames = sample_rate, array.shape[1], array.shape[0]

    def encode(self, blobs: BlobStore) -> dict[str, Any]:
        assert self._wav is not None
        digest, _, _ = blobs.put_bytes(self._wav)
        return {"_type": self.kind, "sha256": digest, "sample_rate": self.sample_rate, "channels": self.channels,
                "frames": self.frames, "caption": self.caption}  # fmt: skip

    @classmethod
    def decode(cls, ref: dict[str, Any], blobs: BlobStore) -> Audio:
        audio = cls(caption=ref.get("caption"))
        audio._path = blobs.path(ref["sha256"])
        audio.sample_rate, audio.channels, audio.frames = ref["sample_rate"], ref["channels"], ref["frames"]
        return audio

    def to_numpy(self) -> Any:
        """int16 samples, shape (frames, channels)."""
        import numpy as np

        source = io.BytesIO(self._wav) if self._wav is not None else str(self._path)
        with wave.open(source, "rb") as src:  # type: ignore[arg-type]
            frames = src.readframes(src.getnframes())
            return np.frombuffer(frames, dtype="<i2").reshape(-1, src.getnchannels())

    def _identity(self) -> Any:
        return (self.to_numpy().tobytes(), self.sample_rate, self.caption)

    def __repr__(self) -> str:
        return f"Audio({self.frames} frames x {self.channels} ch @ {self.sample_rate} Hz)"


def decode(ref: dict[str, Any], blobs: BlobStore) -> Media:
    """The media object a stored reference stands for."""
    import runstack.core.media_table  # noqa: F401 - registers Table, Text and Html

    return MEDIA_TYPES[ref["_type"]].decode(ref, blobs)
