"""The data that crosses the trust line: plain values encoded with torch.save, decoded with the safe loader.

Only tensors, numbers, strings, None, and lists, tuples and dicts of them cross. Decoding never uses
``pickle.loads``: it checks the archive's directory (stored entries, sizes), bounds the pickle, loads with
``torch.load(..., weights_only=True)``, then checks every tensor's element count *before* anything is copied,
and hands the graders dense, contiguous tensors of their own (on the device they were sent from) (an expanded, zero-stride tensor is tiny on
the wire and huge once materialised).
"""
from __future__ import annotations

import base64
import binascii
import io
import zipfile

import torch

#: The MIME type of the display bundle that carries a reply from the grading kernel.
REPLY_MIME = "application/vnd.dlvision.reply+json"

#: Bounds on one decoded value (besides the byte cap the caller gives).
MAX_ELEMENTS = 64 << 20          # tensor elements in all
MAX_PICKLE_BYTES = 4 << 20       # the object structure (lists, dicts, numbers, strings) apart from tensor data
MAX_STRING_CHARS = 1000          # one string


class WireError(ValueError):
    """A payload that is too large, not base64, or not plain data."""


def encode(value) -> str:
    """Encode a plain value as base64 text."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode(text: str, max_bytes: int, max_elements: int = MAX_ELEMENTS,
           max_string_chars: int | None = MAX_STRING_CHARS) -> object:
    """Decode base64 text made by :func:`encode`, safely and within bounds; raise WireError otherwise.

    ``max_string_chars`` bounds every string (None: no bound, for the trusted side's own requests)."""
    if not isinstance(text, str):
        raise WireError(f"expected base64 text, got {type(text).__name__}")
    if len(text) > (max_bytes * 4) // 3 + 4:
        raise WireError(f"the reply is larger than the {max_bytes:,}-byte limit")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise WireError(f"not base64: {error}") from None
    _check_archive(raw, max_bytes)
    try:
        value = torch.load(io.BytesIO(raw), weights_only=True)
    except Exception as error:  # the safe unpickler refuses anything that is not plain data
        raise WireError(f"not plain data ({type(error).__name__}: {str(error).splitlines()[0][:200]})") from None
    return _owned(value, [max_elements], 0, max_string_chars)


def _check_archive(raw: bytes, max_bytes: int) -> None:
    """The zip archive holds stored (uncompressed) entries whose sizes add up within the bounds."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise WireError(f"not a torch archive ({error})") from None
    total = 0
    for entry in entries:
        if entry.compress_type != zipfile.ZIP_STORED:
            raise WireError("the archive holds compressed entries")
        total += entry.file_size
        if entry.filename.endswith("data.pkl") and entry.file_size > MAX_PICKLE_BYTES:
            raise WireError(f"the reply's structure holds more than {MAX_PICKLE_BYTES:,} bytes")
    if total > max_bytes:
        raise WireError(f"the reply unpacks to more than {max_bytes:,} bytes")


def _owned(value, budget: list[int], depth: int, max_chars: int | None):
    """A copy of ``value`` the trusted side owns: dense contiguous tensors, bounded strings and nesting."""
    if depth > 32:
        raise WireError("the reply is nested more than 32 levels deep")
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.is_quantized or value.is_meta:
            raise WireError(f"a tensor of layout {value.layout} (only dense tensors cross)")
        budget[0] -= value.numel()
        if budget[0] < 0:
            raise WireError(f"the reply holds more than {MAX_ELEMENTS:,} tensor elements")
        return value.detach().clone(memory_format=torch.contiguous_format)
    if isinstance(value, str):
        if max_chars is not None and len(value) > max_chars:
            raise WireError(f"a string of {len(value):,} characters (at most {max_chars:,})")
        return str(value)
    if isinstance(value, (list, tuple)):
        items = [_owned(v, budget, depth + 1, max_chars) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {_owned(k, budget, depth + 1, max_chars): _owned(v, budget, depth + 1, max_chars)
                for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, complex, torch.dtype, torch.device, torch.Size)):
        return value
    raise WireError(f"a value of type {type(value).__name__}")
