"""Hidden test: SmallCNN, trained by the grader's own loop on shifted digits (Chapter 4, section 6.2).

The grader's loop, in its scenario: torch.manual_seed(seed); SmallCNN(); 300 steps of torch.optim.Adam (lr 0.01) on
the cross-entropy of minibatches of 32 training digits, each shifted by up to 2 pixels each way (dlvision.data's
jitter) with a generator seeded alike; one CPU thread. It returns the learned parameters, and the accuracy is
computed here, in float64, by the stated network (F.conv2d, ReLU, F.max_pool2d, ..., as in SmallCNN's contract)
on the shifted test digits, which never reach the student's kernel.

The data cannot be looked up: the split of scikit-learn's digits is drawn from fresh randomness, the ten classes
are relabelled by a fresh random permutation (on the training and the test labels alike), the test digits are
shifted here by fresh random amounts, and the scenario's seed is fresh. So parameters trained offline and
returned untouched score about 10%. The bound is explained in THRESHOLDS.md.
"""
import torch
import torch.nn.functional as F

from dlvision.data import jitter, load_digits_16
from dlvision.grading import fresh_generator, fresh_seed, points

SETUP = {"steps": 300, "batch": 32, "lr": 0.01, "shift": 2}
#: The accuracy bound on shifted test digits (THRESHOLDS.md).
THRESHOLD = 0.80
SHAPES = {"conv1.weight": (8, 1, 3, 3), "conv1.bias": (8,), "conv2.weight": (16, 8, 3, 3), "conv2.bias": (16,),
          "fc.weight": (10, 256), "fc.bias": (10,)}


# --- scenario: runs in the student's kernel ---------------------------------------------------------------------

def train_small_cnn(X, y, steps, batch, lr, shift, seed):
    """The grader's loop: Adam on minibatches of shifted digits; returns the learned parameters and the losses."""
    import torch
    import torch.nn.functional as F
    from dlvision.data import jitter

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is fastest, and steady on a busy machine
    try:
        torch.manual_seed(seed)
        model = SmallCNN()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        g = torch.Generator().manual_seed(seed)
        losses = []
        for _ in range(steps):
            idx = torch.randint(0, len(y), (batch,), generator=g)
            loss = F.cross_entropy(model(jitter(X[idx], max_shift=shift, generator=g)[:, None]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return {"params": {name: p.detach() for name, p in model.named_parameters()}, "losses": losses}
    finally:
        torch.set_num_threads(threads)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def digits_task(g):
    """A fresh split of the 16x16 digits, relabelled by a fresh permutation; the test digits shifted here."""
    split_seed = int(torch.randint(0, 2 ** 31 - 1, (), generator=g))
    X_train, y_train, X_test, y_test = load_digits_16(seed=split_seed)
    relabel = torch.randperm(10, generator=g)
    X_test = jitter(X_test, max_shift=SETUP["shift"], generator=g)
    return X_train, relabel[y_train], X_test, relabel[y_test]


def predictions(params, X):
    """The stated SmallCNN, here in float64, from the learned parameters: the predicted class of each image."""
    p = {name: params[name].double() for name in SHAPES}
    h = F.max_pool2d(torch.relu(F.conv2d(X.double()[:, None], p["conv1.weight"], p["conv1.bias"], padding=1)), 2, 2)
    h = F.max_pool2d(torch.relu(F.conv2d(h, p["conv2.weight"], p["conv2.bias"], padding=1)), 2, 2)
    return F.linear(h.flatten(1), p["fc.weight"], p["fc.bias"]).argmax(dim=1)


def learned_accuracy(student, g, seed):
    """(accuracy on the shifted test digits, losses) of the student's SmallCNN trained by the grader's loop."""
    X_train, y_train, X_test, y_test = digits_task(g)
    s = SETUP
    got = student.run(train_small_cnn, X_train, y_train, s["steps"], s["batch"], s["lr"], s["shift"], seed,
                      timeout=120)
    params = got["params"] if isinstance(got, dict) else None
    found = ({k: tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for k, v in params.items()}
             if isinstance(params, dict) else type(params).__name__)
    assert found == SHAPES, (f"after training, SmallCNN's parameters should be {SHAPES}, got {found}. See the tests "
                             "of SmallCNN.")
    return (predictions(params, X_test) == y_test).double().mean().item(), got.get("losses")


# --- test ------------------------------------------------------------------------------------------------------

@points(3)
def test_small_cnn_learns_shifted_digits(student):
    """trained by the grader's loop (300 Adam steps), your SmallCNN is right on > 80% of new shifted test digits"""
    accuracy, losses = learned_accuracy(student, fresh_generator(), fresh_seed())
    trend = ""
    if isinstance(losses, list) and len(losses) == SETUP["steps"] and all(isinstance(v, float) for v in losses):
        first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
        trend = f" The training loss went from {first:.3g} to {last:.3g} (means of the first and last 20 steps)" + (
            ": it did not go down, so the gradients are wrong or do not reach the parameters." if last > 0.8 * first
            else ".")
    assert accuracy > THRESHOLD, (
        f"after {SETUP['steps']} steps of Adam (lr {SETUP['lr']}) on minibatches of {SETUP['batch']} shifted digits, "
        f"your SmallCNN is right on {accuracy:.1%} of 449 unseen shifted digits; a correct one reaches 85% to 95% "
        f"(required: more than {THRESHOLD:.0%}).{trend} The accuracy is computed from the learned parameters with "
        "the stated architecture, so they must be conv1, conv2 and fc as stated. If the tests of conv2d, "
        "conv2d_backward, the pooling or the autograd functions fail, fix those first.")
