"""Hidden tests for decision_grid (Chapter 8, section 4).

The models are the grader's own (torch.nn.Linear and small torch.nn.Sequential networks with weights drawn here),
chosen so that the answer depends on the position in the plane: the probabilities at every grid point are
recomputed here in float64 from the stated grid (torch.linspace of each range, row i = y_i, column j = x_j) and
compared with what decision_grid returns. Tolerances and the speed bound are explained in THRESHOLDS.md.
"""
import torch

from dlvision.grading import (expect_close, expect_keeps_device, expect_on_device, gpu, points, requires,
                              speed_ratio)

#: Probabilities are compared with this tolerance: float32 forward passes, and grid coordinates a correct answer
#: may compute in another (equally correct) way, to about one float32 ulp (THRESHOLDS.md).
PROB_TOL = {"rtol": 1e-5, "atol": 1e-5}
#: The speed bound (THRESHOLDS.md): decision_grid over the reference's time, on grids of 100 x 100 points.
SPEED_BOUND = 10
ORIENTATION = ("P[i, j] = softmax(model(x_j, y_i)) with x_j = torch.linspace(x_min, x_max, resolution)[j] and "
               "y_i = torch.linspace(y_min, y_max, resolution)[i]: row i is y_i (row 0 at y_min), column j is x_j.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def grid_of_network(state, xlim, ylim, resolution, dropout):
    """decision_grid of Sequential(Linear(2, h), Tanh, Dropout(dropout), Linear(h, C)) holding the grader's weights
    (a Linear model when the state has no hidden layer), handed over in training mode; with
    whether the result requires grad and whether gradient recording is on after the call."""
    import torch

    if "weight" in state:
        model = torch.nn.Linear(2, state["weight"].shape[0])
    else:
        hidden, classes = state["0.weight"].shape[0], state["3.weight"].shape[0]
        model = torch.nn.Sequential(torch.nn.Linear(2, hidden), torch.nn.Tanh(), torch.nn.Dropout(dropout),
                                    torch.nn.Linear(hidden, classes))
    model.load_state_dict(state)
    model.train()
    probs = decision_grid(model, xlim, ylim, resolution)
    return {"probs": probs,
            "requires_grad": probs.requires_grad if isinstance(probs, torch.Tensor) else None,
            "grad_enabled": torch.is_grad_enabled()}


def grid_on_a_device(device="cpu"):
    """decision_grid of a small network created on the CPU and moved to the device under test, for
    expect_keeps_device (whose "GPU machine" run makes the notebook's global device "cuda")."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    if device != "cpu":
        model = model.to(device)
    return decision_grid(model, (-1.0, 1.0), (-2.0, 2.0), 6)


def grid_on_the_device_of(weight, bias, xlim, ylim, resolution):
    """decision_grid of a Linear model with the grader's weights, on the device of the weights (a GPU)."""
    import torch

    model = torch.nn.Linear(2, weight.shape[0]).to(weight.device)
    with torch.no_grad():
        model.weight.copy_(weight)
        model.bias.copy_(bias)
    return decision_grid(model, xlim, ylim, resolution)


def grid_speed_inputs(g):
    """A 2 -> 32 -> 3 tanh network with weights from g, and a 100 x 100 grid over ranges drawn from g."""
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    low = float(torch.rand((), generator=g)) * 2 - 2
    return (model, (low, low + 3.0), (low - 0.5, low + 2.0), 100), {}


# --- helpers on the trusted side -------------------------------------------------------------------------------

def logits_of(state, points):
    """The grader's model (Linear, or Linear-Tanh-Linear without dropout) in float64."""
    s = {k: v.double() for k, v in state.items()}
    if "weight" in s:
        return points @ s["weight"].T + s["bias"]
    return torch.tanh(points @ s["0.weight"].T + s["0.bias"]) @ s["3.weight"].T + s["3.bias"]


def stated_points(xlim, ylim, resolution):
    """(resolution, resolution, 2), float64: entry [i, j] is the point (x_j, y_i) of the stated float32 grid."""
    xs = torch.linspace(xlim[0], xlim[1], resolution)
    ys = torch.linspace(ylim[0], ylim[1], resolution)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1).double()


def expected_grid(state, xlim, ylim, resolution):
    points = stated_points(xlim, ylim, resolution)
    return torch.softmax(logits_of(state, points.reshape(-1, 2)), dim=1).reshape(resolution, resolution, -1)


def reference_decision_grid(model, xlim, ylim, resolution):
    """The speed check's reference: the whole grid through the model in one batch (float32, no gradients)."""
    points = stated_points(xlim, ylim, resolution).float().reshape(-1, 2)
    model.eval()
    with torch.no_grad():
        return torch.softmax(model(points), dim=1).reshape(resolution, resolution, -1)


def linear_state(weight, bias):
    return {"weight": torch.tensor(weight), "bias": torch.tensor(bias)}


def network_state(g, hidden, classes):
    shapes = {"0.weight": (hidden, 2), "0.bias": (hidden,), "3.weight": (classes, hidden), "3.bias": (classes,)}
    return {name: (torch.randn(shape, generator=g, dtype=torch.float64) * 1.5).float() for name, shape in shapes.items()}


def orientation_hint(got, state, xlim, ylim, resolution):
    """Name the likely mistake if the grid matches a transposed, flipped or unnormalised answer."""
    expected = expected_grid(state, xlim, ylim, resolution).float()
    if got.shape != expected.shape:
        return ORIENTATION
    close = lambda a: torch.allclose(a.double(), expected.double(), rtol=1e-4, atol=1e-4)  # noqa: E731
    if close(got.transpose(0, 1)):
        return "Your grid is transposed: row i must be y_i and column j x_j (torch.meshgrid(ys, xs, indexing='ij'))."
    if close(got.flip(0)):
        return "Your rows run from y_max down to y_min: row 0 is y_min (the bottom, shown with origin='lower')."
    if close(got.flip(1)):
        return "Your columns run from x_max down to x_min: column 0 is x_min."
    points = stated_points(xlim, ylim, resolution)
    logits = logits_of(state, points.reshape(-1, 2)).reshape(resolution, resolution, -1)
    if torch.allclose(got.double(), logits, rtol=1e-4, atol=1e-4):
        return "You returned the logits: apply torch.softmax over the classes (the last dimension)."
    return ORIENTATION


def check_grid(got, state, xlim, ylim, resolution, what):
    expected = expected_grid(state, xlim, ylim, resolution).float()
    probs = got["probs"]
    hint = orientation_hint(probs, state, xlim, ylim, resolution) if isinstance(probs, torch.Tensor) else ORIENTATION
    expect_close(probs, expected, **PROB_TOL, hint=hint,
                 name=f"decision_grid({what}, xlim={xlim}, ylim={ylim}, resolution={resolution})")


# --- tests -----------------------------------------------------------------------------------------------------

@points(3)
def test_grid_holds_the_softmax_at_the_stated_points(student):
    """P[i, j] is the softmax of the model at (x_j, y_i), x and y from torch.linspace of their ranges (2 to 40 points)"""
    g = torch.Generator().manual_seed(4)
    cases = [
        (linear_state([[0.0, 0.0], [3.0, -2.0]], [0.0, 0.5]), (-1.5, 2.5), (-0.5, 1.0), 7, "a linear 2-class model"),
        (linear_state([[1.0, 2.0], [-2.0, 0.5], [0.3, -1.0]], [0.1, -0.2, 0.0]), (-2.0, 1.0), (0.0, 3.0), 2,
         "a linear 3-class model"),
        (network_state(g, 16, 2), (-1.3, 1.3), (-1.3, 1.3), 40, "a 2 -> 16 -> 2 tanh network"),
        (network_state(g, 8, 4), (0.25, 1.75), (-3.0, -1.0), 9, "a 2 -> 8 -> 4 tanh network"),
    ]
    for state, xlim, ylim, resolution, what in cases:
        got = student.run(grid_of_network, state, xlim, ylim, resolution, 0.0)
        check_grid(got, state, xlim, ylim, resolution, what)
    # "on the device of the model's parameters", on a GPU or the stand-in: it can only fail this test.
    expect_keeps_device(student, grid_on_a_device, hint=(
        "Make the grid on the device of the model's parameters: torch.linspace(..., device=next("
        "model.parameters()).device). Without device= it is on the CPU while a model on the GPU waits for it; with "
        "the notebook's global `device` it is on the GPU while the model may be on the CPU."))


@points(1)
def test_grid_is_computed_in_eval_mode(student):
    """decision_grid calls model.eval(): with dropout in the model, P holds the dropout-free probabilities"""
    g = torch.Generator().manual_seed(5)
    state = network_state(g, 24, 2)
    xlim, ylim, resolution = (-1.0, 1.0), (-1.5, 0.5), 12
    got = student.run(grid_of_network, state, xlim, ylim, resolution, 0.5)
    expected = expected_grid(state, xlim, ylim, resolution).float()
    expect_close(got["probs"], expected, **PROB_TOL,
                 name=f"decision_grid of a network with Dropout(0.5), handed over in training mode",
                 hint="Call model.eval() before the forward pass: in training mode dropout zeroes half of the hidden "
                      "units at random, and the picture changes at every call.")


@points(1)
@requires("test_grid_holds_the_softmax_at_the_stated_points")
def test_grid_records_no_gradients(student):
    """the returned probabilities do not require grad, and gradient recording is on again after the call"""
    g = torch.Generator().manual_seed(6)
    state = network_state(g, 10, 3)
    got = student.run(grid_of_network, state, (-1.0, 1.0), (-1.0, 1.0), 10, 0.0)
    assert got["requires_grad"] is False, (
        "the probabilities decision_grid returns require grad, so a graph of the whole grid was recorded: compute "
        "them inside `with torch.no_grad():`.")
    assert got["grad_enabled"] is True, (
        "after decision_grid, gradient recording is off for everything that follows (training included): use "
        "`with torch.no_grad():`, which switches it back on when the block ends, not torch.set_grad_enabled(False).")


@points(1)
@requires("test_grid_holds_the_softmax_at_the_stated_points")
def test_grid_is_one_batch_not_a_loop_over_points(student):
    """decision_grid on 100 x 100 points runs within 10x the time of one batched forward pass (no Python loop)"""
    ratio = speed_ratio(student, "decision_grid", reference_decision_grid, grid_speed_inputs)
    assert ratio < SPEED_BOUND, (
        f"decision_grid took {ratio:.0f} times as long as one batched pass over the 10 000 points of a 100 x 100 grid "
        f"(allowed: {SPEED_BOUND} times; a batched answer takes about 1 to 2 times). Build all the points at once "
        "(torch.meshgrid, then stack them into a (resolution * resolution, 2) tensor) and call the model once.")


@gpu
@points(1)
@requires("test_grid_holds_the_softmax_at_the_stated_points")
def test_grid_of_a_model_on_the_gpu(student, device):
    """for a model on the GPU, decision_grid makes its grid there and returns the probabilities on the GPU"""
    state = linear_state([[0.5, -1.0], [2.0, 1.0], [-1.0, 0.0]], [0.0, 0.3, -0.1])
    xlim, ylim, resolution = (-1.0, 2.0), (-0.5, 0.5), 11
    got = student.on(device).run(grid_on_the_device_of, state["weight"], state["bias"], xlim, ylim, resolution)
    expect_on_device(got, device, expected_grid(state, xlim, ylim, resolution).float(), **PROB_TOL,
                     name="decision_grid of a model on cuda",
                     hint="Make the grid with device=next(model.parameters()).device.")
