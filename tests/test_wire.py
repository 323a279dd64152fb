"""What crosses the trust line is decoded safely and within bounds, before anything is materialised."""
import base64
import io
import os
import pickle
import zipfile

import pytest
import torch

from dlvision.grading import wire


def test_plain_values_round_trip():
    value = {"out": torch.arange(6.0).reshape(2, 3), "loss": 0.5, "names": ["a", "b"], "shape": (2, 3), "none": None}
    back = wire.decode(wire.encode(value), max_bytes=1 << 20)
    assert torch.equal(back["out"], value["out"])
    assert back["loss"] == 0.5 and back["names"] == ["a", "b"] and back["shape"] == (2, 3) and back["none"] is None


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/dlvision-wire-exploit",))


def test_a_pickle_that_would_run_code_is_refused_without_running_it():
    if os.path.exists("/tmp/dlvision-wire-exploit"):
        os.remove("/tmp/dlvision-wire-exploit")
    payload = base64.b64encode(pickle.dumps(_Exploit())).decode()
    with pytest.raises(wire.WireError):
        wire.decode(payload, max_bytes=1 << 20)
    assert not os.path.exists("/tmp/dlvision-wire-exploit")


class Thing:
    pass


def test_an_arbitrary_object_saved_with_torch_is_refused():
    with pytest.raises(wire.WireError, match="not plain data"):
        wire.decode(wire.encode(Thing()), max_bytes=1 << 20)


def test_a_payload_over_the_size_cap_is_refused_before_decoding():
    with pytest.raises(wire.WireError, match="larger than"):
        wire.decode(wire.encode(torch.zeros(1000)), max_bytes=100)


def test_text_that_is_not_base64_is_refused():
    with pytest.raises(wire.WireError, match="base64"):
        wire.decode("not base64 at all!", max_bytes=1 << 20)


def test_an_expanded_tensor_is_refused_by_its_element_count_before_it_is_copied():
    huge = torch.zeros(()).expand(1 << 40)
    text = wire.encode(huge)
    assert len(text) < 10_000
    with pytest.raises(wire.WireError, match="tensor elements"):
        wire.decode(text, max_bytes=1 << 20)


def test_a_tensor_that_arrives_is_dense_contiguous_and_owned():
    view = torch.arange(12.0).reshape(3, 4).T
    back = wire.decode(wire.encode(view), max_bytes=1 << 20)
    assert back.is_contiguous() and torch.equal(back, view)


def test_a_compressed_archive_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\x00" * (1 << 20))
    with pytest.raises(wire.WireError, match="compressed"):
        wire.decode(base64.b64encode(buffer.getvalue()).decode(), max_bytes=1 << 30)


def test_deep_nesting_and_long_strings_are_refused():
    nested = "x"
    for _ in range(40):
        nested = [nested]
    with pytest.raises(wire.WireError, match="nested"):
        wire.decode(wire.encode(nested), max_bytes=1 << 20)
    with pytest.raises(wire.WireError, match="characters"):
        wire.decode(wire.encode("y" * 5000), max_bytes=1 << 20)
