"""The stand-in CUDA device: on a machine without a GPU it still catches the device mistakes the course's code
makes, and it can only ever fail a check (anything it cannot decide is inconclusive)."""
from __future__ import annotations

import pytest
import torch

from dlvision.grading.device import Inconclusive, StandInTensor, from_wire, on_stand_in

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the stand-in replaces CUDA only where there is none")


def on_device(function, *args):
    return from_wire(on_stand_in(lambda: function, args, {}, device="cuda", gpu_machine=False))


def on_gpu_machine(define):
    """``define()`` returns the function, defined while CUDA is pretended (as a notebook's global device is)."""
    return from_wire(on_stand_in(define, (torch.ones(3),), {}, device=None, gpu_machine=True))


def test_results_of_correct_code_are_on_the_cuda_stand_in():
    got = on_device(lambda x: torch.zeros(x.shape[0], device=x.device) + x.sum(dim=1), torch.ones(4, 3))
    assert got == StandInTensor((4,), "torch.float32", "cuda:0")


def test_a_tensor_made_on_the_cpu_fails_when_it_meets_cuda_inputs():
    with pytest.raises(RuntimeError, match="device"):
        on_device(lambda x: torch.zeros(x.shape[0]) + x.sum(dim=1), torch.ones(4, 3))


def test_a_result_left_on_the_cpu_is_reported_there():
    assert on_device(lambda x: torch.arange(x.shape[0]), torch.ones(4, 3)).device == "cpu"


def test_indexing_a_cpu_tensor_with_cuda_indices_fails_as_on_a_gpu():
    with pytest.raises(RuntimeError, match="same device"):
        on_device(lambda y: torch.eye(3)[y], torch.tensor([0, 2, 1]))
    assert on_device(lambda y: torch.eye(3, device=y.device)[y], torch.tensor([0, 2, 1])).device == "cuda:0"


def test_a_module_moved_to_the_inputs_device_runs_there():
    def forward(x):
        layer = torch.nn.Linear(3, 2).to(x.device)
        return layer(x)

    assert on_device(forward, torch.ones(4, 3)).device == "cuda:0"


def test_on_a_gpu_machine_parameters_made_on_a_global_device_meet_cpu_inputs_and_fail():
    def define():
        device = "cuda" if torch.cuda.is_available() else "cpu"
        weight = torch.ones(3, device=device)
        return lambda x: x * weight

    with pytest.raises(RuntimeError, match="device"):
        on_gpu_machine(define)


def test_using_a_value_is_inconclusive_never_a_pass():
    assert isinstance(on_device(lambda x: torch.tensor(float(x.sum())), torch.ones(3)), Inconclusive)
