"""Hidden tests for BasicBlock (Chapter 5, section 4).

Reference: torchvision.models.resnet.BasicBlock (with the projection shortcut the docstring states when the shape
changes), built here. The grader draws one state dict here (weights, BatchNorm scales, shifts and running
statistics, in float64), loads it into both blocks by the state-dict names that the docstring makes part of the
contract, and compares outputs, gradients and the BatchNorm running statistics after a forward pass, in
training and in evaluation mode.
"""
import math

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock as TorchvisionBasicBlock

from dlvision.grading import expect_close, expect_implemented_without, expect_keeps_device, points, requires

HINT = ("out = ReLU(bn2(conv2(ReLU(bn1(conv1(x))))) + shortcut(x)): conv1 3x3 with the stride and padding 1, conv2 "
        "3x3 with stride 1 and padding 1, both without bias; shortcut(x) = x when stride == 1 and in_ch == out_ch, "
        "else downsample(x) = BatchNorm2d(Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)(x)).")
NAMES_HINT = ("Name the layers conv1, bn1, conv2, bn2 and, when the shape changes (stride != 1 or in_ch != out_ch), "
              "downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), "
              "nn.BatchNorm2d(out_ch)); with no projection, have no downsample parameters at all. The convolutions "
              "have no bias: the BatchNorm after each has one.")

#: (in_ch, out_ch, stride, input shape): identity shortcut; projection for a change of channels; for a stride of 2;
#: for a stride of 2 with the same channels (a batch of one, odd size).
CASES = [(4, 4, 1, (3, 4, 7, 7)), (3, 6, 1, (2, 3, 6, 5)), (4, 8, 2, (2, 4, 9, 8)), (5, 5, 2, (1, 5, 7, 7))]


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def basic_block_run(in_ch, out_ch, stride, state, x, upstream, train):
    """BasicBlock in float64 with the grader's state dict, in training or evaluation mode: its output for x, its
    state dict after that forward pass, and the gradients of sum(output * upstream). Only the state dict's names and
    shapes if they are not the grader's."""
    import torch

    block = BasicBlock(in_ch, out_ch, stride).double()
    found = {k: list(v.shape) for k, v in block.state_dict().items()}
    if found != {k: list(v.shape) for k, v in state.items()}:
        return {"found": found}
    block.load_state_dict(state)
    block.train(train)
    x = x.clone().requires_grad_(True)
    out = block(x)
    result = {"found": found, "out": out, "after": {k: v.clone() for k, v in block.state_dict().items()}}
    if isinstance(out, torch.Tensor) and out.shape == upstream.shape and out.requires_grad:
        out.backward(upstream)
        result.update(x_grad=x.grad, grads={k: p.grad for k, p in block.named_parameters()})
    return result


def basic_block_default(in_ch, out_ch, stride, x):
    """A new BasicBlock as it is built (default dtype and initialisation): its state dict and its output for x."""
    block = BasicBlock(in_ch, out_ch, stride)
    return {"state": block.state_dict(), "out": block(x)}


def basic_block_parameters(in_ch, out_ch, stride):
    """The shapes of BasicBlock(in_ch, out_ch, stride).named_parameters(); with stride None, of
    BasicBlock(in_ch, out_ch) (the default stride)."""
    block = BasicBlock(in_ch, out_ch) if stride is None else BasicBlock(in_ch, out_ch, stride)
    return {k: list(p.shape) for k, p in block.named_parameters()}


def basic_block_on_device(x, device):
    """A BasicBlock with a projection, moved to the device of x unless that is the CPU, applied to x."""
    block = BasicBlock(x.shape[1], 2 * x.shape[1], 2)
    if device != "cpu":
        block = block.to(device)
    return block(x)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference_block(in_ch, out_ch, stride):
    """torchvision's BasicBlock with the stated projection shortcut."""
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))
    return TorchvisionBasicBlock(in_ch, out_ch, stride, downsample)


def random_state(module, g):
    """A state dict for ``module``, drawn here in float64: weights at He scale, BatchNorm scales in [0.5, 1.5],
    shifts and running means of about 0.3, running variances in [0.5, 2], and a count of 7 batches."""
    state = {}
    for name, value in module.state_dict().items():
        kind = name.rsplit(".", 1)[-1]
        if kind == "num_batches_tracked":
            state[name] = torch.tensor(7)
        elif kind == "weight" and value.dim() > 1:
            state[name] = torch.randn(value.shape, generator=g, dtype=torch.float64) * math.sqrt(
                2 / value[0].numel())
        elif kind == "weight":
            state[name] = 0.5 + torch.rand(value.shape, generator=g, dtype=torch.float64)
        elif kind == "running_var":
            state[name] = 0.5 + 1.5 * torch.rand(value.shape, generator=g, dtype=torch.float64)
        else:
            state[name] = 0.3 * torch.randn(value.shape, generator=g, dtype=torch.float64)
    return state


def reference_run(in_ch, out_ch, stride, state, x, upstream, train):
    block = reference_block(in_ch, out_ch, stride).double()
    block.load_state_dict(state)
    block.train(train)
    x = x.clone().requires_grad_(True)
    out = block(x)
    after = {k: v.clone() for k, v in block.state_dict().items()}
    out.backward(upstream)
    return {"out": out.detach(), "after": after, "x_grad": x.grad,
            "grads": {k: p.grad for k, p in block.named_parameters()}}


def describe_names(found, expected):
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = sorted(f"{k} {tuple(found[k])} (expected {tuple(expected[k])})" for k in set(found) & set(expected)
                   if list(found[k]) != list(expected[k]))
    return "; ".join(part for part in (f"missing {', '.join(missing[:6])}" if missing else "",
                                       f"unexpected {', '.join(extra[:6])}" if extra else "",
                                       f"wrong shapes: {', '.join(wrong[:4])}" if wrong else "") if part)


def run_cases(student, cases, train):
    """For each case: the arguments, the student's results and the reference's, on the same state and inputs."""
    g = torch.Generator().manual_seed(21)
    for in_ch, out_ch, stride, shape in cases:
        state = random_state(reference_block(in_ch, out_ch, stride), g)
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        out_shape = (shape[0], out_ch, math.ceil(shape[2] / stride), math.ceil(shape[3] / stride))
        upstream = torch.randn(out_shape, generator=g, dtype=torch.float64)
        got = student.run(basic_block_run, in_ch, out_ch, stride, state, x, upstream, train)
        expected = {k: list(v.shape) for k, v in state.items()}
        if got["found"] != expected:
            raise AssertionError(f"BasicBlock({in_ch}, {out_ch}, stride={stride}).state_dict() should have "
                                 f"torchvision's names and shapes: {describe_names(got['found'], expected)}. "
                                 + NAMES_HINT)
        yield f"BasicBlock({in_ch}, {out_ch}, stride={stride})", x, got, reference_run(
            in_ch, out_ch, stride, state, x, upstream, train)


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_basic_block_forward_in_training_mode_matches_torchvision(student):
    """in training mode BasicBlock(x) equals torchvision's BasicBlock(x) with the same weights (every shortcut kind)"""
    for block, x, got, expected in run_cases(student, CASES, True):
        expect_close(got["out"], expected["out"], name=f"{block}(x) in training mode, x of shape {tuple(x.shape)}",
                     hint=HINT + " In training mode BatchNorm normalises with the batch's statistics.")


@points(1)
def test_basic_block_forward_in_evaluation_mode_uses_the_running_statistics(student):
    """in evaluation mode BasicBlock(x) equals torchvision's, whose BatchNorms use the loaded running statistics"""
    for block, x, got, expected in run_cases(student, CASES, False):
        expect_close(got["out"], expected["out"], name=f"{block}(x) in evaluation mode, x of shape {tuple(x.shape)}",
                     hint=HINT + " In evaluation mode each nn.BatchNorm2d uses its running_mean and running_var.")


@points(2)
def test_basic_block_gradients_match_torchvision(student):
    """backward through BasicBlock gives torchvision's gradients for the input and every parameter (training mode)"""
    for block, x, got, expected in run_cases(student, CASES, True):
        assert "grads" in got, (f"{block}(x) gave no output that gradients flow through: use the layers' outputs "
                                "directly, without .detach() or torch.no_grad().")
        expect_close(got["x_grad"], expected["x_grad"], name=f"the gradient of {block} with respect to x",
                     hint=HINT + " Both paths, the residual and the shortcut, carry gradient back to x.")
        for name, grad in expected["grads"].items():
            expect_close(got["grads"].get(name), grad, name=f"{name}.grad of {block}", hint=HINT)


@points(1)
def test_basic_block_updates_the_running_statistics_like_torchvision(student):
    """a forward pass in training mode updates every BatchNorm's running statistics as torchvision's block does"""
    for block, x, got, expected in run_cases(student, CASES[1:3], True):
        for name, value in expected["after"].items():
            if name.endswith(("running_mean", "running_var", "num_batches_tracked")):
                expect_close(got["after"].get(name), value, name=f"{name} of {block} after one forward pass",
                             hint="Use nn.BatchNorm2d with its default momentum 0.1 (running = 0.9 * running + "
                                  "0.1 * batch statistic, unbiased variance) for bn1, bn2 and downsample.1.")


@points(1)
@requires("test_basic_block_forward_in_training_mode_matches_torchvision")
def test_basic_block_output_shapes_with_stride_2(student):
    """a new BasicBlock with stride 2 maps (N, C, H, W) to (N, 2C, ceil(H/2), ceil(W/2)), float32, even for 1x1"""
    g = torch.Generator().manual_seed(22)
    for in_ch, out_ch, shape in ((3, 6, (2, 3, 8, 8)), (3, 6, (2, 3, 7, 7)), (2, 4, (2, 2, 1, 1)),
                                 (2, 2, (3, 2, 2, 5))):
        x = torch.randn(shape, generator=g)
        got = student.run(basic_block_default, in_ch, out_ch, 2, x)
        block = reference_block(in_ch, out_ch, 2)
        block.load_state_dict(got["state"])
        expected = block(x).detach()
        expect_close(got["out"], expected, rtol=1e-5, atol=1e-6,
                     name=f"a new BasicBlock({in_ch}, {out_ch}, stride=2) on x of shape {tuple(shape)}",
                     hint="conv1 and the projection both have the stride (padding 1 and 0): ceil(H / 2) rows.")


@points(1)
@requires("test_basic_block_forward_in_training_mode_matches_torchvision")
def test_basic_block_parameter_counts(student):
    """BasicBlock(64, 64) has 73,984 parameters and BasicBlock(64, 128, stride=2) 230,144, as torchvision's"""
    for in_ch, out_ch, stride in ((64, 64, None), (64, 128, 2), (3, 5, 1)):
        got = student.run(basic_block_parameters, in_ch, out_ch, stride)
        expected = {k: list(p.shape) for k, p in reference_block(in_ch, out_ch, stride or 1).named_parameters()}
        call = f"BasicBlock({in_ch}, {out_ch}" + ("" if stride is None else f", stride={stride}") + ")"
        count = sum(torch.Size(s).numel() for s in expected.values())
        got_count = sum(torch.Size(s).numel() for s in got.values())
        assert got == expected, (
            f"{call} should have torchvision's {count:,} parameters; it has "
            f"{got_count:,} ({describe_names(got, expected) or 'in other tensors'}). " + NAMES_HINT)


@points(1)
@requires("test_basic_block_forward_in_training_mode_matches_torchvision")
def test_basic_block_keeps_the_device_of_its_input(student):
    """BasicBlock makes its parameters on the CPU and, moved with .to(device), computes on its input's device"""
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(23))
    expect_keeps_device(student, basic_block_on_device, x,
                        hint="Make every layer in __init__ without a device (PyTorch creates them on the CPU; "
                             "block.to(device) moves them all), and create no tensors in forward.")


@points(1)
@requires("test_basic_block_forward_in_training_mode_matches_torchvision")
def test_basic_block_does_not_use_torchvision(student):
    """BasicBlock is built from torch.nn layers, without torchvision's ready-made blocks or helpers"""
    try:
        expect_implemented_without(student, "BasicBlock", ["torchvision", "torch.hub"])
    except AssertionError as error:
        raise AssertionError(f"{error} Build it from nn.Conv2d and nn.BatchNorm2d (torchvision's conv3x3 and "
                             "conv1x1 are off limits too).") from None
