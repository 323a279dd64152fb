"""Hidden tests for ResNet (Chapter 5, section 4.3).

These tests do not depend on the student's blocks: the scenarios pass ResNet blocks of the grader's own, made from
torchvision's BasicBlock and Bottleneck with the signature the docstring states (block(in_ch, ch, stride), with the
class attribute expansion). Reference: the stated network built here from torchvision's blocks (stem, stages
named layer1..layerK, global average pooling, fc). The grader draws one state dict here, in float64, loads it into
both networks by the state-dict names the docstring states, and compares outputs and gradients in training and
evaluation mode; ResNet-18 and ResNet-50 must hold torchvision's tensors (apart from the stem's kernel).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models import resnet as tv

from dlvision.grading import expect_close, expect_implemented_without, expect_keeps_device, expect_on_device, gpu, \
    points, requires
from dlvision.grading.device import Inconclusive

HINT = ("stem: conv1 (3x3, one input channel, padding 1, no bias), bn1, ReLU; then layer1..layerK, stage i made of "
        "layers[i] blocks block(in_ch, width * 2**i, stride) with stride 2 for the first block of every stage but "
        "the first; then the mean over height and width and fc.")
NAMES_HINT = ("Register the stem as conv1 and bn1, each stage as an nn.Sequential named layer1, layer2, ... (e.g. "
              "self.add_module(f'layer{i + 1}', stage) or setattr), and the classifier as fc.")

#: (block kind, layers, num_classes, width, input shape): one to three stages, up to three blocks in a stage, both
#: block kinds, odd sizes, a batch of one.
CASES = [("basic", [1, 1, 1], 10, 4, (2, 1, 16, 16)), ("basic", [2, 1], 3, 3, (1, 1, 9, 9)),
         ("bottleneck", [1, 2], 5, 2, (3, 1, 8, 7)), ("basic", [3], 4, 5, (2, 1, 5, 5))]


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def resnet_run(kind, layers, num_classes, width, state, x, upstream, train):
    """ResNet with the grader's torchvision-based blocks, in float64 with the grader's state dict, in training or
    evaluation mode: its output for x and the gradients of sum(output * upstream). Only the state dict's names and
    shapes if they are not the grader's."""
    import torch
    from torchvision.models import resnet as tv

    base = tv.BasicBlock if kind == "basic" else tv.Bottleneck

    class Block(base):
        def __init__(self, in_ch, ch, stride=1):
            out = ch * base.expansion
            down = None
            if stride != 1 or in_ch != out:
                down = torch.nn.Sequential(torch.nn.Conv2d(in_ch, out, 1, stride=stride, bias=False),
                                           torch.nn.BatchNorm2d(out))
            super().__init__(in_ch, ch, stride, down)

    net = ResNet(Block, layers, num_classes, width).double()
    found = {k: list(v.shape) for k, v in net.state_dict().items()}
    if found != {k: list(v.shape) for k, v in state.items()}:
        return {"found": found}
    net.load_state_dict(state)
    net.train(train)
    x = x.clone().requires_grad_(True)
    out = net(x)
    result = {"found": found, "out": out}
    if isinstance(out, torch.Tensor) and out.shape == upstream.shape and out.requires_grad:
        out.backward(upstream)
        result.update(x_grad=x.grad, grads={k: p.grad for k, p in net.named_parameters()})
    return result


def resnet_shapes(kind, layers, num_classes, width):
    """Names and shapes of the state dict of ResNet with the grader's blocks, built on the meta device, and the
    number of entries of its parameters()."""
    import torch
    from torchvision.models import resnet as tv

    base = tv.BasicBlock if kind == "basic" else tv.Bottleneck

    class Block(base):
        def __init__(self, in_ch, ch, stride=1):
            out = ch * base.expansion
            down = None
            if stride != 1 or in_ch != out:
                down = torch.nn.Sequential(torch.nn.Conv2d(in_ch, out, 1, stride=stride, bias=False),
                                           torch.nn.BatchNorm2d(out))
            super().__init__(in_ch, ch, stride, down)

    with torch.device("meta"):
        net = ResNet(Block, layers, num_classes, width)
    return {"state": {k: list(v.shape) for k, v in net.state_dict().items()},
            "count": sum(p.numel() for p in net.parameters())}


def resnet_on_device(x, device):
    """A small ResNet with the grader's blocks, moved to the device of x unless that is the CPU, applied to x."""
    import torch
    from torchvision.models import resnet as tv

    class Block(tv.BasicBlock):
        def __init__(self, in_ch, ch, stride=1):
            down = None
            if stride != 1 or in_ch != ch:
                down = torch.nn.Sequential(torch.nn.Conv2d(in_ch, ch, 1, stride=stride, bias=False),
                                           torch.nn.BatchNorm2d(ch))
            super().__init__(in_ch, ch, stride, down)

    net = ResNet(Block, [1, 1], 3, 4)
    if device != "cpu":
        net = net.to(device)
    return net(x)


def resnet_on_cuda(state, x, upstream, backward):
    """ResNet([1, 1, 1], 10 classes, width 4) with the grader's blocks and state, in float64 on the device of x
    (training mode): its output, and with backward the gradients of sum(output * upstream)."""
    import torch
    from torchvision.models import resnet as tv

    class Block(tv.BasicBlock):
        def __init__(self, in_ch, ch, stride=1):
            down = None
            if stride != 1 or in_ch != ch:
                down = torch.nn.Sequential(torch.nn.Conv2d(in_ch, ch, 1, stride=stride, bias=False),
                                           torch.nn.BatchNorm2d(ch))
            super().__init__(in_ch, ch, stride, down)

    net = ResNet(Block, [1, 1, 1], 10, 4).double().to(x.device)
    net.load_state_dict(state)
    x = x.clone().requires_grad_(True)
    out = net(x)
    if not backward:
        return out
    out.backward(upstream)
    return {"out": out, "x_grad": x.grad, "grads": {k: p.grad for k, p in net.named_parameters()}}


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference_block(kind):
    """A block class with the stated signature, from torchvision's blocks."""
    base = tv.BasicBlock if kind == "basic" else tv.Bottleneck

    class Block(base):
        def __init__(self, in_ch, ch, stride=1):
            out = ch * base.expansion
            down = None
            if stride != 1 or in_ch != out:
                down = nn.Sequential(nn.Conv2d(in_ch, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
            super().__init__(in_ch, ch, stride, down)

    return Block


class ReferenceResNet(nn.Module):
    """The network the docstring states, written here."""

    def __init__(self, kind, layers, num_classes, width):
        super().__init__()
        block = reference_block(kind)
        self.conv1 = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.depth = len(layers)
        in_ch = width
        for i, n in enumerate(layers):
            blocks = []
            for j in range(n):
                blocks.append(block(in_ch, width * 2 ** i, 2 if i > 0 and j == 0 else 1))
                in_ch = width * 2 ** i * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(self.depth):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(x.mean(dim=(2, 3)))


def random_state(module, g):
    """A state dict for ``module``, drawn here in float64: weights at He scale, BatchNorm scales in [0.5, 1.5],
    shifts, biases and running means of about 0.3, running variances in [0.5, 2], and a count of 7 batches."""
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


def describe_names(found, expected):
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = sorted(f"{k} {tuple(found[k])} (expected {tuple(expected[k])})" for k in set(found) & set(expected)
                   if list(found[k]) != list(expected[k]))
    return "; ".join(part for part in (f"missing {', '.join(missing[:5])}" if missing else "",
                                       f"unexpected {', '.join(extra[:5])}" if extra else "",
                                       f"wrong shapes: {', '.join(wrong[:3])}" if wrong else "") if part)


def run_cases(student, cases, train):
    """For each case: a description, the student's results and the reference's, on the same state and inputs."""
    g = torch.Generator().manual_seed(41)
    for kind, layers, num_classes, width, shape in cases:
        reference = ReferenceResNet(kind, layers, num_classes, width).double()
        state = random_state(reference, g)
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        upstream = torch.randn(shape[0], num_classes, generator=g, dtype=torch.float64)
        got = student.run(resnet_run, kind, layers, num_classes, width, state, x, upstream, train)
        what = f"ResNet({'BasicBlock' if kind == 'basic' else 'Bottleneck'}-like blocks, {layers}, {num_classes}, {width})"
        expected_names = {k: list(v.shape) for k, v in state.items()}
        if got["found"] != expected_names:
            raise AssertionError(f"{what}.state_dict() should have torchvision's names and shapes: "
                                 f"{describe_names(got['found'], expected_names)}. " + NAMES_HINT)
        reference.load_state_dict(state)
        reference.train(train)
        x_leaf = x.clone().requires_grad_(True)
        out = reference(x_leaf)
        out.backward(upstream)
        expected = {"out": out.detach(), "x_grad": x_leaf.grad,
                    "grads": {k: p.grad for k, p in reference.named_parameters()}}
        yield f"{what} on x of shape {tuple(shape)}", got, expected


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_resnet_forward_matches_the_stated_network(student):
    """ResNet(block, layers, num_classes, width)(x) is the stated stem, stages and head, in training and eval mode"""
    for train in (True, False):
        mode = "training" if train else "evaluation"
        for what, got, expected in run_cases(student, CASES, train):
            expect_close(got["out"], expected["out"], name=f"{what}, in {mode} mode", hint=HINT)


@points(1)
def test_resnet_gradients_match_the_stated_network(student):
    """backward through ResNet gives the gradients of the input and of every parameter (training mode)"""
    for what, got, expected in run_cases(student, CASES[:3], True):
        assert "grads" in got, (f"{what} gave no output that gradients flow through: use the layers' outputs "
                                "directly, without .detach() or torch.no_grad().")
        expect_close(got["x_grad"], expected["x_grad"], name=f"the gradient of {what} with respect to x", hint=HINT)
        for name, grad in expected["grads"].items():
            expect_close(got["grads"].get(name), grad, name=f"{name}.grad of {what}", hint=HINT)


@points(1)
@requires("test_resnet_forward_matches_the_stated_network")
def test_resnet_18_and_50_hold_torchvisions_tensors(student):
    """ResNet(BasicBlock, [2,2,2,2], 1000, 64) and ResNet(Bottleneck, [3,4,6,3], 1000, 64) hold torchvision's
    ResNet-18's and ResNet-50's tensors (11,680,680 and 25,548,200 parameters: only the stem differs)"""
    for kind, layers, model in (("basic", [2, 2, 2, 2], torchvision.models.resnet18),
                                ("bottleneck", [3, 4, 6, 3], torchvision.models.resnet50)):
        got = student.run(resnet_shapes, kind, layers, 1000, 64)
        with torch.device("meta"):
            reference = model()
        reference.conv1 = nn.Conv2d(1, 64, 3, padding=1, bias=False, device="meta")
        expected = {k: list(v.shape) for k, v in reference.state_dict().items()}
        count = sum(p.numel() for p in reference.parameters())
        what = f"ResNet({'BasicBlock' if kind == 'basic' else 'Bottleneck'}, {layers}, 1000, 64)"
        assert got["state"] == expected, (
            f"{what} should hold the tensors of torchvision's {model.__name__}() apart from its stem ({count:,} "
            f"parameters): {describe_names(got['state'], expected) or 'they differ'}. " + NAMES_HINT)
        assert got["count"] == count, (
            f"{what}.parameters() holds {got['count']:,} numbers; torchvision's {model.__name__}() with our stem has "
            f"{count:,}. Do the blocks of a stage share weights? Make a new block object for every block "
            "([block(...)] * n repeats one object n times).")


@points(1)
@requires("test_resnet_forward_matches_the_stated_network")
def test_resnet_keeps_the_device_of_its_input(student):
    """ResNet makes its layers on the CPU and, moved with .to(device), computes on its input's device"""
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(42))
    expect_keeps_device(student, resnet_on_device, x,
                        hint="Make every layer in __init__ without a device (model.to(device) moves them all), and "
                             "create no tensors in forward (pool with x.mean(dim=(2, 3)) or F.adaptive_avg_pool2d).")


@points(1)
@requires("test_resnet_forward_matches_the_stated_network")
def test_resnet_does_not_use_torchvision(student):
    """ResNet is built from torch.nn layers and the blocks it is given, without torchvision's models"""
    try:
        expect_implemented_without(student, "ResNet", ["torchvision", "torch.hub"])
    except AssertionError as error:
        raise AssertionError(f"{error} Build the stem, the stages and the head from torch.nn layers and the block "
                             "class you are given.") from None


@gpu
@points(1)
@requires("test_resnet_forward_matches_the_stated_network")
def test_resnet_runs_forward_and_backward_on_cuda(student, device):
    """moved to cuda, ResNet computes its output (and its gradients) there, equal to the CPU reference (float64)"""
    g = torch.Generator().manual_seed(43)
    reference = ReferenceResNet("basic", [1, 1, 1], 10, 4).double()
    state = random_state(reference, g)
    x = torch.randn(4, 1, 12, 12, generator=g, dtype=torch.float64)
    upstream = torch.randn(4, 10, generator=g, dtype=torch.float64)
    reference.load_state_dict(state)
    x_leaf = x.clone().requires_grad_(True)
    out = reference(x_leaf)
    out.backward(upstream)
    hint = ("Create no tensor in forward without device=x.device, and nothing in __init__ on a device of your "
            "choosing: model.to('cuda') must move everything.")
    on_cuda = student.on(device)
    expect_on_device(on_cuda.run(resnet_on_cuda, state, x, upstream, False), device, out.detach(), rtol=1e-6,
                     atol=1e-9, name="ResNet's output on cuda", hint=hint)
    got = on_cuda.run(resnet_on_cuda, state, x, upstream, True)
    if isinstance(got, Inconclusive):
        return  # the stand-in device runs no backward pass: the forward pass above is what it can check
    expect_on_device(got["x_grad"], device, x_leaf.grad, rtol=1e-6, atol=1e-9,
                     name="the gradient with respect to x, on cuda", hint=hint)
    for name, p in reference.named_parameters():
        expect_on_device(got["grads"].get(name), device, p.grad, rtol=1e-6, atol=1e-9, name=f"{name}.grad on cuda",
                         hint=hint)
