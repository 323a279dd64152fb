"""Hidden test: TwoLayerNet trained with adam_step on a 3-class spiral (Chapter 3, section 7).

The grader's own loop and seeds: 600 training points of make_spirals(classes=3, turns=1, noise=0.015), a
TwoLayerNet(2, 64, 3, std=0.5) trained full batch for 400 steps of adam_step (lr 0.03, reg 1e-4), then
evaluated on 600 fresh points whose labels never leave the trusted side. The bound is explained in
THRESHOLDS.md.
"""
import torch

from dlvision.data import make_spirals
from dlvision.grading import points

SETUP = {"n": 600, "noise": 0.015, "turns": 1.0, "hidden": 64, "std": 0.5, "lr": 0.03, "reg": 1e-4, "steps": 400,
         "train_seed": 1000, "test_seed": 2000, "init_seed": 0}
THRESHOLD = 0.95


# --- scenario: runs in the student's kernel ---------------------------------------------------------------------

def train_on_spiral(X, y, X_test, hidden, std, lr, reg, steps, init_seed):
    """The grader's loop: full-batch adam_step on the student's TwoLayerNet; returns the test predictions."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is fastest, and steady on a busy machine
    try:
        net = TwoLayerNet(2, hidden, 3, std=std, generator=torch.Generator().manual_seed(init_seed))
        state, losses = {}, []
        for _ in range(steps):
            loss, grads = net.loss(X, y, reg=reg)
            adam_step(net.params, grads, state, lr=lr)
            losses.append(float(loss))
        return {"predictions": net.scores(X_test).argmax(dim=1), "losses": losses}
    finally:
        torch.set_num_threads(threads)


# --- test ------------------------------------------------------------------------------------------------------

@points(3)
def test_spiral_test_accuracy_is_above_95_percent(student):
    """trained by the grader's loop with your TwoLayerNet and adam_step, the spiral classifier is right on > 95%
    of unseen points"""
    s = SETUP
    X, y = make_spirals(s["n"], classes=3, turns=s["turns"], noise=s["noise"], seed=s["train_seed"])
    X_test, y_test = make_spirals(s["n"], classes=3, turns=s["turns"], noise=s["noise"], seed=s["test_seed"])
    got = student.run(train_on_spiral, X, y, X_test, s["hidden"], s["std"], s["lr"], s["reg"], s["steps"],
                      s["init_seed"], timeout=90)
    predictions, losses = got["predictions"], got["losses"]
    assert isinstance(predictions, torch.Tensor) and predictions.shape == y_test.shape, (
        f"scores(X_test).argmax(dim=1) should have shape {tuple(y_test.shape)}.")
    accuracy = (predictions.cpu() == y_test).double().mean().item()
    assert accuracy > THRESHOLD, (
        f"after {s['steps']} steps of adam_step (lr {s['lr']}), your TwoLayerNet(2, {s['hidden']}, 3) is right on "
        f"{accuracy:.1%} of 600 unseen spiral points; a correct network and optimizer reach about 98% "
        f"(required: more than {THRESHOLD:.0%}). The training loss went from {losses[0]:.3g} to {losses[-1]:.3g}"
        + (", upwards: a gradient or an update with the wrong sign?" if losses[-1] > losses[0] else ".")
        + " If the tests of your layers, TwoLayerNet or adam_step fail, fix those first.")
