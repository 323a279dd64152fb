"""Hidden tests for TwoLayerNet (Chapter 8, section 2).

The forward and gradient tests load weights drawn here into the student's network through its state dict (the
names fc1.weight, fc1.bias, fc2.weight, fc2.bias are part of the contract) and compare what it computes with
fc2(tanh(fc1(x))) computed here in float64 from those weights, and autograd through it. The initial weights are
compared with torch.nn.Linear's own, drawn here after the same torch.manual_seed.
"""
import torch

from dlvision.grading import (expect_close, expect_keeps_device, expect_on_device, gpu, points, requires)

#: (hidden, num_classes, batch size) of the forward checks: one hidden unit, one class, a batch of one, and
#: num_classes left at its default (None here: TwoLayerNet(hidden), which has 2 classes).
SIZES = [(8, 2, 16), (1, 2, 1), (2, 2, 5), (32, 3, 7), (5, 4, 3), (3, 1, 4), (4, None, 6)]

FORWARD_HINT = "forward returns fc2(tanh(fc1(x))): the logits, with tanh between the layers and nothing after fc2."


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def forward_with(hidden, num_classes, state, x):
    """TwoLayerNet(hidden, num_classes) (TwoLayerNet(hidden) when num_classes is None) with the grader's weights
    (load_state_dict), applied to x; no output if its state dict does not have the grader's names and shapes."""
    net = TwoLayerNet(hidden) if num_classes is None else TwoLayerNet(hidden, num_classes)
    shapes = {name: list(value.shape) for name, value in net.state_dict().items()}
    if shapes != {name: list(value.shape) for name, value in state.items()}:
        return {"shapes": shapes}
    net.load_state_dict(state)
    return {"shapes": shapes, "out": net(x)}


def gradients_with(hidden, num_classes, state, x, upstream):
    """The .grad of every named parameter after backward() of sum(net(x) * upstream)."""
    net = TwoLayerNet(hidden, num_classes)
    shapes = {name: list(value.shape) for name, value in net.state_dict().items()}
    if shapes != {name: list(value.shape) for name, value in state.items()}:
        return {"shapes": shapes}
    net.load_state_dict(state)
    out = net(x)
    if out.requires_grad:
        (out * upstream).sum().backward()
    return {"shapes": shapes, "grads": {name: p.grad for name, p in net.named_parameters()}}


def initial_state(hidden, num_classes, seed):
    """The state dict of a new TwoLayerNet made right after torch.manual_seed(seed)."""
    import torch

    torch.manual_seed(seed)
    return dict(TwoLayerNet(hidden, num_classes).state_dict())


def parameter_counts(cases):
    """How many numbers parameters() holds, for each (hidden, num_classes)."""
    return [sum(p.numel() for p in TwoLayerNet(hidden, num_classes).parameters()) for hidden, num_classes in cases]


def TwoLayerNet_on_a_device(x, device="cpu"):
    """TwoLayerNet(6, 3)(x) used as the notebook does, for expect_keeps_device (which moves x): created on the CPU
    and moved with .to(device) when the device under test is not the CPU."""
    net = TwoLayerNet(6, 3)
    if device != "cpu":
        net = net.to(device)
    return net(x)


def forward_on_the_device_of(state, x):
    """The network with the grader's weights, moved to x's device (a GPU), applied to x."""
    net = TwoLayerNet(state["fc1.weight"].shape[0], state["fc2.weight"].shape[0])
    net.load_state_dict(state)
    net = net.to(x.device)
    return net(x)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def draw_state(g, hidden, num_classes):
    """Weights in the range of PyTorch's initialisation, a little wider so that tanh is used off its linear part."""
    shapes = {"fc1.weight": (hidden, 2), "fc1.bias": (hidden,), "fc2.weight": (num_classes, hidden),
              "fc2.bias": (num_classes,)}
    return {name: (torch.rand(shape, generator=g, dtype=torch.float64) * 4 - 2).float()
            for name, shape in shapes.items()}


def expected_shapes(hidden, num_classes):
    return {"fc1.weight": [hidden, 2], "fc1.bias": [hidden], "fc2.weight": [num_classes, hidden],
            "fc2.bias": [num_classes]}


def reference(state, x, activation=torch.tanh):
    s = {name: value.double() for name, value in state.items()}
    return activation(x.double() @ s["fc1.weight"].T + s["fc1.bias"]) @ s["fc2.weight"].T + s["fc2.bias"]


def check_shapes(found, hidden, num_classes, call=None):
    expected = expected_shapes(hidden, num_classes)
    call = call or f"TwoLayerNet({hidden}, {num_classes})"
    assert found == expected, (
        f"{call}.state_dict() should hold exactly "
        + ", ".join(f"{k} {tuple(v)}" for k, v in expected.items()) + "; it holds "
        + (", ".join(f"{k} {tuple(v)}" for k, v in found.items()) or "nothing")
        + ". Name the layers self.fc1 = torch.nn.Linear(2, hidden) and self.fc2 = torch.nn.Linear(hidden, "
          "num_classes) (a Sequential or other names change the state dict's keys); num_classes is 2 by default.")


def activation_hint(state, x, got):
    """A hint naming the activation the output matches, if it is another one."""
    for name, activation in (("no activation", lambda h: h), ("relu", torch.relu), ("sigmoid", torch.sigmoid)):
        if torch.allclose(got.double(), reference(state, x, activation), rtol=1e-4, atol=1e-5):
            return f"The output matches the network with {name} between the layers; the playground's uses tanh."
    if torch.allclose(got.double(), torch.tanh(reference(state, x)), rtol=1e-4, atol=1e-5):
        return "The output matches tanh applied after fc2 as well: the logits come out of fc2 as they are."
    if torch.allclose(got.double(), torch.softmax(reference(state, x), dim=1), rtol=1e-4, atol=1e-5):
        return "The output matches the softmax of the logits: forward returns the logits themselves."
    return FORWARD_HINT


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_forward_is_fc2_of_tanh_of_fc1(student):
    """with weights loaded into fc1 and fc2, TwoLayerNet(x) = fc2(tanh(fc1(x))) (one unit, one class, N = 1, default
    num_classes too)"""
    g = torch.Generator().manual_seed(1)
    for hidden, num_classes, n in SIZES:
        classes = 2 if num_classes is None else num_classes
        state = draw_state(g, hidden, classes)
        x = (torch.randn(n, 2, generator=g, dtype=torch.float64) * 1.5).float()
        got = student.run(forward_with, hidden, num_classes, state, x)
        call = f"TwoLayerNet({hidden})" if num_classes is None else f"TwoLayerNet({hidden}, {num_classes})"
        check_shapes(got["shapes"], hidden, classes, call=call)
        expected = reference(state, x).float()
        out = got["out"]
        hint = activation_hint(state, x, out) if isinstance(out, torch.Tensor) and out.shape == expected.shape \
            else FORWARD_HINT
        expect_close(out, expected, name=f"{call}(x) for x of shape ({n}, 2)", hint=hint)
    # The docstring's "created on the CPU; the caller moves it with .to(device)", on a GPU or the stand-in: it can
    # only fail this test.
    expect_keeps_device(student, TwoLayerNet_on_a_device, torch.randn(4, 2, generator=g), hint=(
        "Create the layers on the CPU (no .to(device) in __init__) and let the caller move the network with "
        "net.to(device): layers moved to the notebook's global `device` inside __init__ land on the GPU even when "
        "the caller wants the network on the CPU."))


@points(1)
def test_gradients_reach_every_parameter(student):
    """backward() through TwoLayerNet fills the .grad of fc1 and fc2's weights and biases with autograd's values"""
    g = torch.Generator().manual_seed(2)
    for hidden, num_classes, n in ((4, 2, 6), (9, 3, 1)):
        state = draw_state(g, hidden, num_classes)
        x = torch.randn(n, 2, generator=g)
        upstream = torch.randn(n, num_classes, generator=g)
        got = student.run(gradients_with, hidden, num_classes, state, x, upstream)
        check_shapes(got["shapes"], hidden, num_classes)
        leaves = {name: value.double().requires_grad_(True) for name, value in state.items()}
        (reference(leaves, x) * upstream.double()).sum().backward()
        grads = got["grads"] if isinstance(got.get("grads"), dict) else {}
        for name, leaf in leaves.items():
            assert grads.get(name) is not None, (
                f"after backward(), {name}.grad of TwoLayerNet({hidden}, {num_classes}) is None: is its output used, "
                "undetached, in forward (no .detach(), .data or torch.no_grad() inside forward)?")
            expect_close(grads[name], leaf.grad.float(), name=f"{name}.grad", rtol=1e-5, atol=1e-5,
                         hint=FORWARD_HINT)


@points(1)
def test_initial_weights_are_pytorch_default_linear_layers(student):
    """after torch.manual_seed(s), TwoLayerNet's weights are those of torch.nn.Linear(2, h), then Linear(h, C)"""
    for hidden, num_classes, seed in ((8, 2, 0), (32, 3, 5)):
        got = student.run(initial_state, hidden, num_classes, seed)
        check_shapes({name: list(value.shape) for name, value in got.items()}, hidden, num_classes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fc1, fc2 = torch.nn.Linear(2, hidden), torch.nn.Linear(hidden, num_classes)
        expected = {"fc1.weight": fc1.weight, "fc1.bias": fc1.bias, "fc2.weight": fc2.weight, "fc2.bias": fc2.bias}
        for name, value in expected.items():
            expect_close(got[name], value.detach(),
                         name=f"{name} of TwoLayerNet({hidden}, {num_classes}) made after torch.manual_seed({seed})",
                         hint="Create self.fc1 = torch.nn.Linear(2, hidden) first, then self.fc2 = "
                              "torch.nn.Linear(hidden, num_classes), with their default initialisation, and draw "
                              "nothing else at random in __init__.")


@points(1)
@requires("test_forward_is_fc2_of_tanh_of_fc1")
def test_parameter_count_is_3h_plus_h_plus_1_times_classes(student):
    """parameters() holds 3 * hidden + (hidden + 1) * num_classes numbers: every weight is registered, once"""
    cases = [(1, 2), (2, 2), (8, 2), (32, 2), (37, 3), (5, 10)]
    counts = student.run(parameter_counts, cases)
    for (hidden, num_classes), count in zip(cases, counts):
        expected = 3 * hidden + (hidden + 1) * num_classes
        assert count == expected, (
            f"TwoLayerNet({hidden}, {num_classes}).parameters() holds {count} numbers; fc1 has 2 * {hidden} + "
            f"{hidden} and fc2 {hidden} * {num_classes} + {num_classes}, {expected} in all. Register exactly the two "
            "layers as attributes (a layer kept in a plain list is not registered; an extra layer adds more).")


@gpu
@points(1)
@requires("test_forward_is_fc2_of_tanh_of_fc1")
def test_forward_runs_on_the_gpu(student, device):
    """moved to a GPU, TwoLayerNet computes fc2(tanh(fc1(x))) there and returns the logits on the GPU"""
    g = torch.Generator().manual_seed(3)
    state = draw_state(g, 16, 3)
    x = torch.randn(10, 2, generator=g)
    got = student.on(device).run(forward_on_the_device_of, state, x)
    expect_on_device(got, device, reference(state, x).float(), rtol=1e-4, atol=1e-5,
                     name="TwoLayerNet(16, 3)(x) on cuda",
                     hint="Use only the layers' own parameters in forward (no tensors made on the CPU there), so "
                          "that net.to(device) moves everything the network needs.")
