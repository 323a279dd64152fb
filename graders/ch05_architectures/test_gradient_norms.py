"""Hidden tests for gradient_norms (Chapter 5, section 6).

The grader describes small networks as lists of torch.nn layers (an MLP with tanh, a convolutional network with
BatchNorm, a residual MLP), builds each one both in the student's kernel and here from that description, loads the
same state dict drawn here into both, and compares the student's norms with the norms of the gradients that
torch.autograd.grad gives here for the mean cross-entropy. Speed: a ratio to that reference, on a deeper MLP made
from fresh seeds (bound in THRESHOLDS.md).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from dlvision.grading import expect_close, expect_keeps_device, expect_on_device, gpu, points, requires, speed_ratio

HINT = ("loss = F.cross_entropy(model(x), y) (the mean over the batch); the weights are the parameters whose name "
        "ends with 'weight' and that have 2 or more dimensions, in the order of model.named_parameters(); return "
        "torch.stack of the norms of their gradients.")

#: Networks as lists of torch.nn layers ("Residual" adds its input to its body's output), with an input shape.
SPECS = {
    "an MLP with tanh": ([["Flatten"], ["Linear", 64, 32], ["Tanh"], ["Linear", 32, 32], ["Tanh"],
                          ["Linear", 32, 10]], (1, 8, 8), 10),
    "a convolutional network with BatchNorm": ([["Conv2d", 1, 4, 3], ["BatchNorm2d", 4], ["ReLU"],
                                                ["Conv2d", 4, 6, 3, 2], ["ReLU"], ["Flatten"], ["Linear", 24, 5]],
                                               (1, 8, 8), 5),
    "a residual MLP": ([["Linear", 16, 8], ["Residual", [["Linear", 8, 8], ["ReLU"], ["Linear", 8, 8, False]]],
                        ["ReLU"], ["Linear", 8, 3]], (16,), 3),
}


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def norms_run(spec, state, x, y, train, calls, grads_before):
    """The grader's network, built from its description, with the grader's state dict (and .grad set to
    grads_before where given), in training or evaluation mode: gradient_norms(model, x, y), `calls` times, and the
    parameters and their .grad afterwards."""
    import torch

    class Residual(torch.nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, h):
            return h + self.body(h)

    def build(layers):
        return torch.nn.Sequential(*[Residual(build(args[0])) if kind == "Residual" else getattr(torch.nn, kind)(*args)
                                     for kind, *args in layers])

    model = build(spec).to(x.dtype)
    model.load_state_dict(state)
    model.train(train)
    for name, p in model.named_parameters():
        p.grad = None if grads_before.get(name) is None else grads_before[name].clone()
    norms = [gradient_norms(model, x, y) for _ in range(calls)]
    return {"norms": norms, "params": {k: p.detach().clone() for k, p in model.named_parameters()},
            "grads": {k: p.grad for k, p in model.named_parameters()}}


def norms_on_device(x, y, device):
    """gradient_norms of a small MLP, moved to the device of x unless that is the CPU."""
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    if device != "cpu":
        model = model.to(device)
    return gradient_norms(model, x, y)


def norms_on_cuda(spec, state, x, y):
    """gradient_norms of the grader's network (training mode), moved to the device of x."""
    import torch

    class Residual(torch.nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, h):
            return h + self.body(h)

    def build(layers):
        return torch.nn.Sequential(*[Residual(build(args[0])) if kind == "Residual" else getattr(torch.nn, kind)(*args)
                                     for kind, *args in layers])

    model = build(spec).to(x.dtype).to(x.device)
    model.load_state_dict(state)
    return gradient_norms(model, x, y)


def speed_inputs(g):
    """A 128-layer tanh MLP of width 16 with weights drawn from g, and a batch of 64 inputs with labels (for the
    speed check: deep and thin, so that the cost is in the number of layers a backward pass visits)."""
    import torch

    layers = []
    for _ in range(127):
        layers += [torch.nn.Linear(16, 16), torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(16, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return (model, torch.randn(64, 16, generator=g), torch.randint(0, 10, (64,), generator=g)), {}


# --- helpers on the trusted side -------------------------------------------------------------------------------

class Residual(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, h):
        return h + self.body(h)


def build(layers):
    return nn.Sequential(*[Residual(build(args[0])) if kind == "Residual" else getattr(nn, kind)(*args)
                           for kind, *args in layers])


def random_state(model, g, dtype):
    """Parameters of about unit gain and BatchNorm statistics spread out, drawn here."""
    state = {}
    for name, value in model.state_dict().items():
        kind = name.rsplit(".", 1)[-1]
        if kind == "num_batches_tracked":
            state[name] = torch.tensor(3)
        elif kind == "running_var":
            state[name] = (0.5 + 1.5 * torch.rand(value.shape, generator=g, dtype=torch.float64)).to(dtype)
        elif kind == "weight" and value.dim() > 1:
            state[name] = (torch.randn(value.shape, generator=g, dtype=torch.float64)
                           * 1.2 / value[0].numel() ** 0.5).to(dtype)
        else:
            state[name] = (0.5 * torch.randn(value.shape, generator=g, dtype=torch.float64)).to(dtype)
    return state


def reference_norms(model, x, y):
    weights = [p for name, p in model.named_parameters() if name.endswith("weight") and p.dim() >= 2]
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights)
    return torch.stack([g.norm() for g in grads])


def case(what, n, dtype, seed, train=True):
    """A network of SPECS, its state dict, a batch and the reference norms."""
    spec, shape, classes = SPECS[what]
    g = torch.Generator().manual_seed(seed)
    model = build(spec).to(dtype)
    state = random_state(model, g, dtype)
    model.load_state_dict(state)
    model.train(train)
    x = torch.randn((n, *shape), generator=g, dtype=torch.float64).to(dtype)
    y = torch.randint(0, classes, (n,), generator=g)
    return spec, state, x, y, reference_norms(model, x, y)


def describe(what, n, dtype, train):
    return f"gradient_norms of {what} ({'training' if train else 'evaluation'} mode, batch of {n}, {dtype})"


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_gradient_norms_match_autograd(student):
    """gradient_norms gives the norm of each conv and linear weight's gradient, float32 and float64, N = 1 included"""
    for what, n, dtype, seed, train in (("an MLP with tanh", 7, torch.float64, 0, True),
                                        ("a convolutional network with BatchNorm", 1, torch.float64, 1, True),
                                        ("a convolutional network with BatchNorm", 3, torch.float64, 2, False),
                                        ("a residual MLP", 5, torch.float32, 3, True),
                                        ("a convolutional network with BatchNorm", 6, torch.float32, 4, True)):
        spec, state, x, y, expected = case(what, n, dtype, seed, train)
        got = student.run(norms_run, spec, state, x, y, train, 1, {})
        expect_close(got["norms"][0], expected, name=describe(what, n, dtype, train), hint=HINT)


@points(1)
def test_gradient_norms_are_the_same_on_a_second_call(student):
    """called twice on the same model, gradient_norms returns the same norms (no gradients pile up in between)"""
    for what, seed in (("an MLP with tanh", 5), ("a residual MLP", 6)):
        spec, state, x, y, expected = case(what, 4, torch.float64, seed)
        got = student.run(norms_run, spec, state, x, y, True, 2, {})
        for k, norms in enumerate(got["norms"]):
            expect_close(norms, expected, name=f"call {k + 1} of {describe(what, 4, torch.float64, True)}",
                         hint="loss.backward() adds to the .grad already there, so a second call sees twice the "
                              "gradient: take the gradients with torch.autograd.grad(loss, weights) instead.")


@points(1)
@requires("test_gradient_norms_match_autograd")
def test_gradient_norms_leave_the_parameters_and_their_grad_unchanged(student):
    """gradient_norms changes neither the model's parameters nor what their .grad held before the call"""
    what = "a convolutional network with BatchNorm"
    spec, state, x, y, expected = case(what, 4, torch.float64, 7)
    g = torch.Generator().manual_seed(8)
    params = [k for k in state if k.endswith(("weight", "bias"))]
    before = {k: (torch.randn(state[k].shape, generator=g, dtype=torch.float64) if i % 2 == 0 else None)
              for i, k in enumerate(params)}
    got = student.run(norms_run, spec, state, x, y, True, 1, before)
    expect_close(got["norms"][0], expected, name=describe(what, 4, torch.float64, True), hint=HINT)
    for k in params:
        expect_close(got["params"].get(k), state[k], name=f"parameter {k} after the call",
                     hint="Measure only: no optimizer step, no in-place change of a parameter.")
        if before[k] is None:
            assert got["grads"].get(k) is None, (
                f"after gradient_norms, {k}.grad holds a tensor; it was None before the call. Use "
                "torch.autograd.grad(loss, weights), which returns the gradients without storing them in .grad.")
        else:
            expect_close(got["grads"].get(k), before[k], name=f"{k}.grad after the call (it held a tensor before)",
                         hint="Use torch.autograd.grad(loss, weights): loss.backward() adds to .grad, and "
                              "zero_grad() throws away what was there.")


@points(1)
@requires("test_gradient_norms_match_autograd")
def test_gradient_norms_keep_the_device_of_their_input(student):
    """for a model and a batch on cuda, gradient_norms returns its norms on cuda (and on the CPU for CPU inputs)"""
    g = torch.Generator().manual_seed(9)
    x, y = torch.randn(5, 6, generator=g), torch.randint(0, 3, (5,), generator=g)
    expect_keeps_device(student, norms_on_device, x, y,
                        hint="torch.stack the norms (they are 0-d tensors on the device of the model); a new tensor "
                             "such as torch.zeros(L) or torch.tensor([...]) is made on the CPU.")


@points(1)
@requires("test_gradient_norms_match_autograd")
def test_gradient_norms_of_a_128_layer_mlp_take_one_backward_pass(student):
    """on a 128-layer MLP and 64 samples, gradient_norms runs within 5x the time of one autograd.grad (no loops)"""
    ratio = speed_ratio(student, "gradient_norms", reference_norms, speed_inputs, repeats=3, min_seconds=0.1)
    assert ratio < 5, (
        f"gradient_norms took {ratio:.1f} times as long as one forward pass and one torch.autograd.grad over all "
        "weights (bound: 5x). One backward pass gives every layer's gradient at once: do not loop over the samples "
        "of the batch, or call autograd once per layer.")


@gpu
@points(1)
@requires("test_gradient_norms_match_autograd")
def test_gradient_norms_run_on_cuda(student, device):
    """for a network and a batch on cuda, gradient_norms computes the norms there, equal to the CPU reference"""
    what = "a convolutional network with BatchNorm"
    spec, state, x, y, expected = case(what, 4, torch.float64, 10)
    got = student.on(device).run(norms_on_cuda, spec, state, x, y)
    expect_on_device(got, device, expected, rtol=1e-6, atol=1e-9, name=f"{describe(what, 4, torch.float64, True)}, "
                     "on cuda", hint="Keep everything on the device of x: torch.stack the norms of the gradients "
                                     "(0-d tensors on that device); do not build the result with torch.zeros(...) or "
                                     "torch.tensor([...]), which are made on the CPU.")
