"""Hidden tests: a small ResNet of the student's classes, trained by the grader on jittered digits (Chapter 5,
section 7).

The network is ResNet(BasicBlock, [1, 1, 1], 10, 8) built from the student's ResNet and BasicBlock. First the
grader checks that it is the stated network: with a state dict drawn here loaded into it, its outputs equal those
of the same network written here with torchvision's BasicBlock. Then the grader's own loop trains it in the
student's kernel (seeded initialisation, Adam with a cosine decay, 300 minibatches of 32) on scikit-learn's training
digits at 16x16, rotated and shifted afresh, and returns the learned state dict. The test digits, jittered afresh
too, never leave the trusted side: the grader loads the learned weights into its own network and classifies them
here. Settings and bound: THRESHOLDS.md.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock as TorchvisionBasicBlock

from dlvision.data import jitter, load_digits_16
from dlvision.grading import expect_close, fresh_generator, points, requires

SETUP = {"layers": [1, 1, 1], "width": 8, "steps": 300, "lr": 0.01, "batch_size": 32, "init_seed": 0,
         "max_shift": 2, "max_degrees": 20.0}
THRESHOLD = 0.92
HINT = ("If the tests of BasicBlock or ResNet fail, fix those first: this network is made of them. ResNet(BasicBlock, "
        "[1, 1, 1], 10, 8) is conv1, bn1, ReLU, layer1 (one block, stride 1), layer2 and layer3 (one block each, "
        "stride 2, with a projection), the mean over height and width, then fc.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def digits_resnet_run(state, x, train):
    """ResNet(BasicBlock, [1, 1, 1], 10, 8) of the student's classes, in float64 with the grader's state dict: its
    output for x in training or evaluation mode. Only the state dict's names and shapes if they are not the
    grader's."""
    net = ResNet(BasicBlock, [1, 1, 1], 10, 8).double()
    found = {k: list(v.shape) for k, v in net.state_dict().items()}
    if found != {k: list(v.shape) for k, v in state.items()}:
        return {"found": found}
    net.load_state_dict(state)
    net.train(train)
    return {"found": found, "out": net(x)}


def train_on_digits(X, y, layers, width, steps, lr, batch_size, init_seed, batch_seed):
    """The grader's loop: Adam with a cosine decay of the learning rate on random minibatches; returns the learned
    state dict and the training losses."""
    import math

    import torch
    import torch.nn.functional as F

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is fastest, and steady on a busy machine
    try:
        torch.manual_seed(init_seed)
        net = ResNet(BasicBlock, layers, 10, width)
        net.train()
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        g = torch.Generator().manual_seed(batch_seed)
        losses = []
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            batch = torch.randint(0, len(y), (batch_size,), generator=g)
            loss = F.cross_entropy(net(X[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
        return {"state": {k: v.detach().clone() for k, v in net.state_dict().items()}, "losses": losses}
    finally:
        torch.set_num_threads(threads)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def basic_block(in_ch, out_ch, stride):
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))
    return TorchvisionBasicBlock(in_ch, out_ch, stride, downsample)


class ReferenceResNet(nn.Module):
    """ResNet(BasicBlock, layers, num_classes, width) as the docstrings state it, with torchvision's BasicBlock."""

    def __init__(self, layers, num_classes, width):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.depth = len(layers)
        in_ch = width
        for i, n in enumerate(layers):
            blocks = []
            for j in range(n):
                blocks.append(basic_block(in_ch, width * 2 ** i, 2 if i > 0 and j == 0 else 1))
                in_ch = width * 2 ** i
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(self.depth):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(x.mean(dim=(2, 3)))


def random_state(module, g):
    """A state dict for ``module``, drawn here in float64 (weights at He scale, BatchNorm statistics spread out)."""
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


def digits_task(g):
    """scikit-learn's digits at 16x16 (the training and test split of load_digits_16), each image rotated and
    shifted afresh with g; returns the training images and labels, the test images and labels, and a seed for the
    order of the minibatches."""
    X_train, y_train, X_test, y_test = load_digits_16()
    s = SETUP
    J_train = jitter(X_train, max_shift=s["max_shift"], max_degrees=s["max_degrees"], generator=g)[:, None]
    J_test = jitter(X_test, max_shift=s["max_shift"], max_degrees=s["max_degrees"], generator=g)[:, None]
    batch_seed = int(torch.randint(0, 2 ** 31 - 1, (), generator=g))
    return J_train, y_train, J_test, y_test, batch_seed


def accuracy_of(state, X_test, y_test):
    """The accuracy, computed here, of the reference network holding the learned weights (evaluation mode)."""
    net = ReferenceResNet(SETUP["layers"], 10, SETUP["width"])
    net.load_state_dict(state)
    net.eval()
    with torch.no_grad():
        return (net(X_test).argmax(dim=1) == y_test).double().mean().item()


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_digits_resnet_is_the_stated_network(student):
    """ResNet(BasicBlock, [1, 1, 1], 10, 8) of your classes computes what the stated network computes, in both modes"""
    g = torch.Generator().manual_seed(51)
    reference = ReferenceResNet(SETUP["layers"], 10, SETUP["width"]).double()
    state = random_state(reference, g)
    x = torch.randn(4, 1, 16, 16, generator=g, dtype=torch.float64)
    for train in (True, False):
        reference.load_state_dict(state)  # afresh: a forward pass in training mode updates the running statistics
        got = student.run(digits_resnet_run, state, x, train)
        expected = {k: list(v.shape) for k, v in state.items()}
        assert got["found"] == expected, (
            f"ResNet(BasicBlock, [1, 1, 1], 10, 8).state_dict() should have {len(expected)} tensors with torchvision's "
            f"names (conv1, bn1, layer1.0.conv1, ..., layer2.0.downsample.0, ..., fc); got {len(got['found'])}, "
            f"e.g. missing {sorted(set(expected) - set(got['found']))[:3]}, unexpected "
            f"{sorted(set(got['found']) - set(expected))[:3]}. " + HINT)
        reference.train(train)
        with torch.no_grad():
            out = reference(x)
        expect_close(got["out"], out, name=f"ResNet(BasicBlock, [1, 1, 1], 10, 8)(x) in "
                                           f"{'training' if train else 'evaluation'} mode", hint=HINT)


@points(3)
@requires("test_digits_resnet_is_the_stated_network")
def test_resnet_learns_rotated_and_shifted_digits(student):
    """trained by the grader's loop, ResNet(BasicBlock, [1, 1, 1], 10, 8) classifies > 92% of new jittered digits"""
    s = SETUP
    X, y, X_test, y_test, batch_seed = digits_task(fresh_generator())
    got = student.run(train_on_digits, X, y, s["layers"], s["width"], s["steps"], s["lr"], s["batch_size"],
                      s["init_seed"], batch_seed, timeout=120)
    state, losses = got["state"], got["losses"]
    expected = {k: list(v.shape) for k, v in ReferenceResNet(s["layers"], 10, s["width"]).state_dict().items()}
    found = {k: list(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    assert found == expected, ("after training, the network's state dict no longer has the stated names and shapes; "
                               "see the tests of ResNet and BasicBlock.")
    accuracy = accuracy_of(state, X_test, y_test)
    trend = ""
    if isinstance(losses, list) and len(losses) == s["steps"] and all(isinstance(v, float) for v in losses):
        first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
        trend = f" The training loss went from {first:.3g} to {last:.3g} (means of 20 steps)."
    assert accuracy > THRESHOLD, (
        f"after {s['steps']} steps of Adam in the grader's loop, your ResNet(BasicBlock, [1, 1, 1], 10, 8) classifies "
        f"{accuracy:.1%} of {len(y_test)} new rotated and shifted digits correctly; a correct network reaches 93% "
        f"to 98% (required: more than {THRESHOLD:.0%}).{trend} Check that every layer is registered and trainable "
        "(so that parameters() gives the optimizer all of them, with requires_grad), that gradients flow through "
        "both paths of each block, and that BatchNorm keeps its running statistics as nn.BatchNorm2d does (they "
        "are used in evaluation mode).")
