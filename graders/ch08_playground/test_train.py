"""Hidden tests for train (Chapter 8, section 3).

The student's train runs on a network the grader builds itself (torch.nn.Sequential(Linear, Tanh, Linear), with
initial weights fixed by torch.manual_seed), so these tests do not depend on TwoLayerNet. The reference replays
the procedure the docstring states (torch.optim.Adam created once, torch.randperm(N, generator=generator) per
epoch, batches of 32 in that order, F.cross_entropy, zero_grad / backward / step, the epoch's mean loss weighted by
batch size) here, on the same network and data, and compares the history and the trained weights. Tolerances and
the loss bound are explained in THRESHOLDS.md.
"""
import torch
import torch.nn.functional as F

from dlvision.data import make_spirals
from dlvision.grading import expect_close, points, requires

BATCH = 32
#: Tolerances for replaying the training (float32; THRESHOLDS.md).
HISTORY_TOL = {"rtol": 1e-5, "atol": 1e-6}
WEIGHTS_TOL = {"rtol": 1e-4, "atol": 1e-5}
PROCEDURE = ("optimiser = torch.optim.Adam(model.parameters(), lr=lr) once; every epoch order = "
             "torch.randperm(N, generator=generator); batches order[0:32], order[32:64], ... (the last one smaller); "
             "for each: loss = F.cross_entropy(model(X[batch]), y[batch]), zero_grad(), backward(), step(); "
             "history[e] = sum of loss * batch size over the epoch / N.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def train_grader_network(sizes, init_seed, X, y, epochs, lr, seed, global_seed):
    """train on Sequential(Linear, Tanh, Linear) built after torch.manual_seed(init_seed); the global random state is
    then set to global_seed, which must not matter. Returns the history and the trained weights."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(init_seed)
        model = torch.nn.Sequential(torch.nn.Linear(sizes[0], sizes[1]), torch.nn.Tanh(),
                                    torch.nn.Linear(sizes[1], sizes[2]))
        torch.manual_seed(global_seed)
        history = train(model, X, y, epochs, lr, torch.Generator().manual_seed(seed))
        return {"history": history, "state": dict(model.state_dict())}
    finally:
        torch.set_num_threads(threads)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def grader_network(sizes, init_seed):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        return torch.nn.Sequential(torch.nn.Linear(sizes[0], sizes[1]), torch.nn.Tanh(),
                                   torch.nn.Linear(sizes[1], sizes[2]))


def reference_train(sizes, init_seed, X, y, epochs, lr, seed, *, shuffle=True, weighted=True, zero_grad=True,
                    optimiser_per_epoch=False, drop_last=False, last_batch_only=False):
    """The stated procedure, replayed here (the keywords give the likely mistakes, for the hints)."""
    net = grader_network(sizes, init_seed)
    gen = torch.Generator().manual_seed(seed)
    adam = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    history, n = [], len(X)
    for _ in range(epochs):
        if optimiser_per_epoch:
            adam = torch.optim.Adam(net.parameters(), lr=lr)
        perm = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
        seen, count, batch_losses = 0.0, 0, []
        stop = n - n % BATCH if drop_last and n >= BATCH else n
        for first in range(0, stop, BATCH):
            idx = perm[first:first + BATCH]
            batch_loss = F.cross_entropy(net(X[idx]), y[idx])
            if zero_grad:
                adam.zero_grad()
            batch_loss.backward()
            adam.step()
            seen += batch_loss.item() * len(idx)
            count += len(idx)
            batch_losses.append(batch_loss.item())
        history.append(batch_losses[-1] if last_batch_only else seen / count if weighted
                       else sum(batch_losses) / len(batch_losses))
    return history, {k: v.detach().clone() for k, v in net.state_dict().items()}


MISTAKES = [
    ("the points are not shuffled: draw order = torch.randperm(N, generator=generator) at the start of every epoch",
     {"shuffle": False}),
    ("history[e] is the plain mean of the batch losses; weight each batch's loss by its size and divide by N",
     {"weighted": False}),
    ("history[e] is the last batch's loss; it is the mean over the epoch (loss * batch size summed, / N)",
     {"last_batch_only": True}),
    ("the gradients are never zeroed, so every step adds up all the batches' gradients so far",
     {"zero_grad": False}),
    ("a new Adam optimiser is made every epoch; make it once, before the first epoch (Adam's running averages "
     "carry over from step to step)", {"optimiser_per_epoch": True}),
    ("the last, smaller batch is dropped; it is trained on too (order[32 * k:] when 32 does not divide N)",
     {"drop_last": True}),
]


def random_task(g, n, num_classes):
    X = (torch.randn(n, 2, generator=g, dtype=torch.float64) * 0.7).float()
    y = torch.randint(0, num_classes, (n,), generator=g)
    return X, y


def check_history(history, epochs):
    assert isinstance(history, list) and len(history) == epochs and all(isinstance(v, float) for v in history), (
        f"train(..., epochs={epochs}, ...) should return a list of {epochs} Python floats (use loss.item()), got "
        + (f"a list of {len(history)} items of types {sorted({type(v).__name__ for v in history})}."
           if isinstance(history, list) else f"a {type(history).__name__}."))


def cross_entropy_of(state, X, y):
    """The loss of the grader's network with these weights on (X, y), computed here in float64."""
    s = {k: v.double() for k, v in state.items()}
    logits = torch.tanh(X.double() @ s["0.weight"].T + s["0.bias"]) @ s["2.weight"].T + s["2.bias"]
    return F.cross_entropy(logits, y).item()


# --- tests -----------------------------------------------------------------------------------------------------

#: (N, (in, hidden, classes), epochs, lr): batches of 32 and 18; exactly two batches; a single batch smaller than 32.
#: The loss test: this many epochs take a correct train's loss to 0.4-0.75 of its start (THRESHOLDS.md).
EPOCHS_TO_LOWER = 30

CASES = [(50, (2, 6, 2), 3, 0.01), (64, (2, 5, 3), 2, 0.02), (5, (2, 4, 2), 4, 0.05), (97, (2, 7, 4), 2, 0.03)]


@points(3)
def test_train_follows_the_stated_procedure(student):
    """train's history and trained weights match the stated mini-batch Adam procedure replayed here, step by step"""
    g = torch.Generator().manual_seed(7)
    for k, (n, sizes, epochs, lr) in enumerate(CASES):
        X, y = random_task(g, n, sizes[2])
        init_seed, seed = 100 + k, 200 + k
        got = student.run(train_grader_network, list(sizes), init_seed, X, y, epochs, lr, seed, 300 + k, timeout=60)
        history, state = got["history"], got["state"]
        check_history(history, epochs)
        expected_history, expected_state = reference_train(sizes, init_seed, X, y, epochs, lr, seed)
        got_history = torch.tensor(history, dtype=torch.float64)
        hint = f"The procedure: {PROCEDURE}"
        if not torch.allclose(got_history, torch.tensor(expected_history, dtype=torch.float64), **HISTORY_TOL):
            mistakes = [what for what, variant in MISTAKES if torch.allclose(
                got_history, torch.tensor(reference_train(sizes, init_seed, X, y, epochs, lr, seed, **variant)[0],
                                          dtype=torch.float64), rtol=1e-4, atol=1e-6)]
            hint = f"It looks as if {mistakes[0]}." if mistakes else hint
        where = f"N = {n} points, {epochs} epochs, lr {lr}"
        expect_close(got_history, torch.tensor(expected_history, dtype=torch.float64), **HISTORY_TOL,
                     name=f"the history for {where}", hint=hint)
        for name, value in expected_state.items():
            expect_close(state[name], value, **WEIGHTS_TOL, name=f"the trained weight {name} for {where}", hint=hint)


@points(1)
def test_train_lowers_the_loss_on_a_spiral(student):
    """on 200 spiral points, 30 epochs of train (lr 0.03) take the network's loss (computed here) at least 10% down"""
    X, y = make_spirals(200, classes=2, turns=1.0, noise=0.03, seed=8)
    sizes, init_seed = (2, 16, 2), 9
    got = student.run(train_grader_network, list(sizes), init_seed, X, y, EPOCHS_TO_LOWER, 0.03, 10, 11,
                      timeout=60)
    check_history(got["history"], EPOCHS_TO_LOWER)
    before = cross_entropy_of(grader_network(sizes, init_seed).state_dict(), X, y)
    after = cross_entropy_of(got["state"], X, y)
    history = got["history"]
    assert after < 0.9 * before, (
        f"after {EPOCHS_TO_LOWER} epochs of train (lr 0.03) the network's cross-entropy on its 200 training points went "
        f"from {before:.3f} to {after:.3f} (computed here from its weights; a correct train takes it below "
        f"{0.9 * before:.3f}). Your history went from {history[0]:.3f} to {history[-1]:.3f}. Check the sign of the "
        "update (optimiser.step() after loss.backward()), that the optimiser gets model.parameters(), and that "
        "the gradients are zeroed before each backward().")
    assert history[-1] < history[0], (
        f"the weights improved (loss {before:.3f} -> {after:.3f}, computed here) but the history went from "
        f"{history[0]:.3f} to {history[-1]:.3f}: history[e] should be the mean loss of epoch e.")


@points(1)
@requires("test_train_follows_the_stated_procedure")
def test_train_is_repeatable_with_a_generator(student):
    """the same generator seed gives the same history and weights whatever the global random state; another seed
    gives another history"""
    g = torch.Generator().manual_seed(12)
    X, y = random_task(g, 70, 2)
    sizes = [2, 5, 2]
    runs = [student.run(train_grader_network, sizes, 13, X, y, 3, 0.02, seed, global_seed)
            for seed, global_seed in ((14, 1), (14, 2), (15, 1))]
    for run in runs:
        check_history(run["history"], 3)
    first, again, other = runs
    hint = ("Draw the permutation with torch.randperm(N, generator=generator): the generator is the only source of "
            "randomness in train.")
    expect_close(torch.tensor(again["history"]), torch.tensor(first["history"]), rtol=0, atol=0, hint=hint,
                 name="the history of a second run with the same generator seed (and another global seed)")
    for name, value in first["state"].items():
        expect_close(again["state"][name], value, rtol=0, atol=0, hint=hint,
                     name=f"the trained {name} of a second run with the same generator seed")
    assert first["history"] != other["history"], (
        "two runs with different generator seeds gave the same history: the order of the batches should come "
        "from the generator.")
