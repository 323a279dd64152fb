"""Hidden tests: how well TwoLayerNet learns the spiral (Chapter 8, section 5).

What is graded is the student's TwoLayerNet (its forward pass, which the gradients flow through); the training
loop is the grader's own, not the student's train: full-batch Adam (lr 0.05) on the cross-entropy for 400 steps,
from the weights TwoLayerNet draws after torch.manual_seed(0), on 400 points of the library's make_spirals
(2 classes, noise 0.03; one turn for 8 units, one and a half turns for 2 units). The scenario returns the learned
state dict; the accuracy is computed here, in float64, as argmax(fc2(tanh(fc1(x)))) on 2000 unseen points, whose
labels never leave the trusted side.

The data cannot be reproduced by the student's code: the spirals' seeds come from fresh_generator(), and both sets
are moved by one random rotation (any angle), reflection (half of the time) and shift (up to 0.5), also drawn
from it. The bounds are explained in THRESHOLDS.md.
"""
import math

import torch

from dlvision.data import make_spirals
from dlvision.grading import fresh_generator, points, requires

SETUP = {"n": 400, "n_test": 2000, "noise": 0.03, "steps": 400, "lr": 0.05, "init_seed": 0, "shift": 0.5}
#: The spirals' turns: one for the 8-unit test (the notebook's spiral), one and a half for the 2-unit test.
TURNS = {8: 1.0, 2: 1.5}
#: 8 hidden units must be right on more than this fraction of the test points (THRESHOLDS.md).
WIDE_ENOUGH = 0.95
#: 2 hidden units stay below this fraction (THRESHOLDS.md).
TOO_NARROW = 0.8


# --- scenario: runs in the student's kernel ---------------------------------------------------------------------

def learn_spiral(hidden, X, y, steps, lr, init_seed):
    """The grader's loop: full-batch Adam on the cross-entropy of the student's TwoLayerNet; returns its weights."""
    import torch
    import torch.nn.functional as F

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is fastest, and steady on a busy machine
    try:
        torch.manual_seed(init_seed)
        net = TwoLayerNet(hidden, 2)
        optimiser = torch.optim.Adam(net.parameters(), lr=lr)
        for _ in range(steps):
            loss = F.cross_entropy(net(X), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        return dict(net.state_dict())
    finally:
        torch.set_num_threads(threads)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def spiral_task(g, turns):
    """Training and test spirals from fresh seeds, moved by one random rotation, reflection and shift (from g)."""
    s = SETUP
    train_seed, test_seed = (int(v) for v in torch.randint(0, 2 ** 31 - 1, (2,), generator=g))
    X, y = make_spirals(s["n"], classes=2, turns=turns, noise=s["noise"], seed=train_seed)
    X_test, y_test = make_spirals(s["n_test"], classes=2, turns=turns, noise=s["noise"], seed=test_seed)
    theta = 2 * math.pi * torch.rand((), generator=g, dtype=torch.float64).item()
    rotation = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]],
                            dtype=torch.float64)
    if torch.randint(0, 2, (), generator=g).item():
        rotation = rotation @ torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
    radius = s["shift"] * torch.rand((), generator=g, dtype=torch.float64).sqrt()
    angle = 2 * math.pi * torch.rand((), generator=g, dtype=torch.float64)
    shift = radius * torch.stack([torch.cos(angle), torch.sin(angle)])
    move = lambda points: (points.double() @ rotation.T + shift).float()  # noqa: E731
    return move(X), y, move(X_test), y_test


def accuracy_after_training(student, hidden, g):
    """Train TwoLayerNet(hidden, 2) with the grader's loop; its accuracy on the held-out points, computed here."""
    s = SETUP
    X, y, X_test, y_test = spiral_task(g, TURNS[hidden])
    state = student.run(learn_spiral, hidden, X, y, s["steps"], s["lr"], s["init_seed"], timeout=90)
    expected = {"fc1.weight": (hidden, 2), "fc1.bias": (hidden,), "fc2.weight": (2, hidden), "fc2.bias": (2,)}
    found = ({k: tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for k, v in state.items()}
             if isinstance(state, dict) else type(state).__name__)
    assert found == expected, (
        f"TwoLayerNet({hidden}).state_dict() should hold {expected} after training, got {found}. See the tests of "
        "TwoLayerNet.")
    p = {k: v.double() for k, v in state.items()}
    logits = torch.tanh(X_test.double() @ p["fc1.weight"].T + p["fc1.bias"]) @ p["fc2.weight"].T + p["fc2.bias"]
    return (logits.argmax(dim=1) == y_test).double().mean().item()


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_8_hidden_units_learn_a_new_spiral(student):
    """trained by the grader's loop, TwoLayerNet(8) is right on more than 95% of the points of a new spiral"""
    s = SETUP
    accuracy = accuracy_after_training(student, 8, fresh_generator())
    assert accuracy > WIDE_ENOUGH, (
        f"after {s['steps']} full-batch Adam steps (lr {s['lr']}) on 400 spiral points, your TwoLayerNet(8) is right "
        f"on {accuracy:.1%} of 2000 new points (judged here as argmax(fc2(tanh(fc1(x))))); a correct network reaches "
        f"96% to 99% (required: more than {WIDE_ENOUGH:.0%}). If the tests of TwoLayerNet fail, fix those first: the "
        "gradients must reach fc1 and fc2 through tanh.")


@points(1)
@requires("test_8_hidden_units_learn_a_new_spiral")
def test_2_hidden_units_cannot_follow_the_spiral(student):
    """trained the same way on a spiral of 1.5 turns, TwoLayerNet(2) stays below 80%: its boundary is almost linear"""
    accuracy = accuracy_after_training(student, 2, fresh_generator())
    assert accuracy < TOO_NARROW, (
        f"TwoLayerNet(2), trained like TwoLayerNet(8) on a spiral of 1.5 turns, is right on {accuracy:.1%} of 2000 new "
        f"points; two tanh units give an almost linear boundary, which stays below {TOO_NARROW:.0%} there (a correct "
        "TwoLayerNet(2) reaches 50% to 72%). Does your network use `hidden`, i.e. fc1 = torch.nn.Linear(2, hidden)?")
