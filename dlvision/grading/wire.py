"""The data that crosses the trust line: plain values encoded with torch.save, decoded with the safe loader.

Only tensors, numbers, strings, None, and lists, tuples and dicts of them cross. Decoding uses
``torch.load(..., weights_only=True)``, never ``pickle.loads``, and refuses payloads above a size cap.
"""
from __future__ import annotations

import base64
import binascii
import io

import torch

#: The MIME type of the display bundle that carries a reply from the student's kernel.
REPLY_MIME = "application/vnd.dlvision.reply+json"


class WireError(ValueError):
    """A payload that is too large, not base64, or not plain data."""


def encode(value) -> str:
    """Encode a plain value as base64 text."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode(text: str, max_bytes: int) -> object:
    """Decode base64 text made by :func:`encode`, with the safe loader; raise WireError if it is not plain."""
    if not isinstance(text, str):
        raise WireError(f"expected base64 text, got {type(text).__name__}")
    if len(text) > (max_bytes * 4) // 3 + 4:
        raise WireError(f"the reply is larger than the {max_bytes:,}-byte limit")
    try:
        raw = base64.b64decode(text, validate=True)
        return torch.load(io.BytesIO(raw), weights_only=True)
    except (binascii.Error, ValueError) as error:
        raise WireError(f"not base64: {error}") from None
    except Exception as error:  # the safe unpickler refuses anything that is not plain data
        raise WireError(f"not plain data ({type(error).__name__}: {str(error).splitlines()[0][:200]})") from None
