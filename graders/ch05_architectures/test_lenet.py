"""Hidden tests for LeNet5 (Chapter 5, section 1).

The grader loads weights drawn here into the student's network through the state-dict names the docstring states
(conv1, conv2, fc1, fc2, fc3), in float64, and compares its output and gradients with the stated network computed
here with torch.nn.functional from the same tensors, and autograd through it.
"""
import torch
import torch.nn.functional as F

from dlvision.grading import expect_close, points, requires

HINT = ("conv1, ReLU, 2x2 max pooling, conv2, ReLU, 2x2 max pooling, flatten with x.flatten(1) (channel, row, "
        "column), fc1, ReLU, fc2, ReLU, fc3; no activation after fc3 (its outputs are the logits).")


def shapes_of(num_classes):
    """The state dict the docstring states: name -> shape."""
    return {"conv1.weight": (6, 1, 5, 5), "conv1.bias": (6,), "conv2.weight": (16, 6, 5, 5), "conv2.bias": (16,),
            "fc1.weight": (120, 400), "fc1.bias": (120,), "fc2.weight": (84, 120), "fc2.bias": (84,),
            "fc3.weight": (num_classes, 84), "fc3.bias": (num_classes,)}


# --- scenario: runs in the student's kernel ---------------------------------------------------------------------

def lenet_run(num_classes, state, x, upstream):
    """LeNet5(num_classes) in float64 with the grader's weights: its output for x, and the gradients of
    sum(output * upstream). Only the state-dict shapes if they are not the grader's."""
    import torch

    net = LeNet5(num_classes).double()
    found = {k: list(v.shape) for k, v in net.state_dict().items()}
    if found != {k: list(v.shape) for k, v in state.items()}:
        return {"found": found}
    net.load_state_dict(state)
    x = x.clone().requires_grad_(True)
    out = net(x)
    result = {"found": found, "out": out}
    if isinstance(out, torch.Tensor) and out.shape == upstream.shape and out.requires_grad:
        out.backward(upstream)
        result.update(x_grad=x.grad, grads={k: p.grad for k, p in net.named_parameters()})
    return result


def lenet_parameters(num_classes):
    """Name, shape, dtype and device of every parameter of a new LeNet5(num_classes) (LeNet5() for None)."""
    net = LeNet5() if num_classes is None else LeNet5(num_classes)
    return {k: [list(p.shape), str(p.dtype), str(p.device)] for k, p in net.named_parameters()}


# --- helpers on the trusted side -------------------------------------------------------------------------------

def random_state(num_classes, seed):
    """Weights of the stated shapes, drawn here in float64 at about the scale of PyTorch's initialisation."""
    g = torch.Generator().manual_seed(seed)
    shapes = shapes_of(num_classes)
    state = {}
    for name, shape in shapes.items():
        fan_in = torch.Size(shapes[name.rsplit(".", 1)[0] + ".weight"][1:]).numel()
        state[name] = torch.randn(shape, generator=g, dtype=torch.float64) * (1.5 / fan_in ** 0.5)
    return state


def reference(state, x):
    h = F.max_pool2d(F.relu(F.conv2d(x, state["conv1.weight"], state["conv1.bias"])), 2, 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, state["conv2.weight"], state["conv2.bias"])), 2, 2)
    h = F.relu(F.linear(h.reshape(h.shape[0], -1), state["fc1.weight"], state["fc1.bias"]))
    h = F.relu(F.linear(h, state["fc2.weight"], state["fc2.bias"]))
    return F.linear(h, state["fc3.weight"], state["fc3.bias"])


def check_names(found, num_classes):
    expected = {k: list(v) for k, v in shapes_of(num_classes).items()}
    if found == expected:
        return
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = sorted(f"{k} {tuple(found[k])} (expected {tuple(expected[k])})" for k in set(found) & set(expected)
                   if found[k] != expected[k])
    raise AssertionError(
        f"LeNet5({num_classes}).state_dict() should hold exactly {', '.join(expected)}; "
        + "; ".join(part for part in (f"missing: {', '.join(missing)}" if missing else "",
                                      f"unexpected: {', '.join(extra[:6])}" if extra else "",
                                      f"wrong shapes: {', '.join(wrong)}" if wrong else "") if part)
        + ". Create the layers as attributes with exactly these names (self.conv1 = nn.Conv2d(1, 6, 5), ...); "
          "the graders load their weights by them.")


def run_cases(student, cases):
    """(state, x, upstream, result) for each (num_classes, batch, seed)."""
    for num_classes, n, seed in cases:
        g = torch.Generator().manual_seed(100 + seed)
        state = random_state(num_classes, seed)
        x = torch.randn(n, 1, 32, 32, generator=g, dtype=torch.float64)
        upstream = torch.randn(n, num_classes, generator=g, dtype=torch.float64)
        got = student.run(lenet_run, num_classes, state, x, upstream)
        check_names(got["found"], num_classes)
        yield num_classes, state, x, upstream, got


CASES = [(10, 1, 0), (10, 4, 1), (3, 2, 2)]


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_lenet_forward_matches_the_stated_layers(student):
    """LeNet5(num_classes)(x) is conv-ReLU-pool twice, then three linear layers, for the grader's weights (float64)"""
    for num_classes, state, x, _, got in run_cases(student, CASES):
        expect_close(got["out"], reference(state, x),
                     name=f"LeNet5({num_classes})(x) for x of shape {tuple(x.shape)}", hint=HINT)


@points(1)
def test_lenet_gradients_match_autograd(student):
    """backward through LeNet5 gives the gradients of every weight and of the input that autograd gives"""
    for num_classes, state, x, upstream, got in run_cases(student, CASES[1:]):
        leaves = {k: v.clone().requires_grad_(True) for k, v in state.items()}
        x_leaf = x.clone().requires_grad_(True)
        reference(leaves, x_leaf).backward(upstream)
        assert "grads" in got, (f"LeNet5({num_classes})(x) gave no output that gradients flow through: use the "
                                "layers' outputs directly, without .detach() or torch.no_grad().")
        expect_close(got["x_grad"], x_leaf.grad, name=f"the gradient with respect to x (LeNet5({num_classes}))",
                     hint=HINT)
        for name, leaf in leaves.items():
            expect_close(got["grads"].get(name), leaf.grad, name=f"{name}.grad", hint=HINT)


@points(1)
@requires("test_lenet_forward_matches_the_stated_layers")
def test_lenet_has_61706_float32_parameters(student):
    """LeNet5() has the stated 61,706 parameters (10 classes by default; 61,026 for 2), float32 on the CPU"""
    for asked in (None, 2):
        found = student.run(lenet_parameters, asked)
        num_classes = 10 if asked is None else asked
        expected = shapes_of(num_classes)
        count = sum(torch.Size(s).numel() for s in expected.values())
        got_count = sum(torch.Size(shape).numel() for shape, _, _ in found.values())
        assert got_count == count and {k: tuple(v[0]) for k, v in found.items()} == expected, (
            f"LeNet5({'' if asked is None else asked}).named_parameters() should be exactly {', '.join(expected)}: {count:,} numbers; "
            f"got {got_count:,} in {', '.join(found) or 'nothing'}.")
        wrong = sorted(k for k, (_, dtype, device) in found.items() if dtype != "torch.float32" or device != "cpu")
        assert not wrong, (f"a new LeNet5({'' if asked is None else asked}) should hold float32 parameters on the CPU (PyTorch's "
                           f"default), but {', '.join(wrong)} are not: do not choose a dtype or device in __init__.")
