"""Hidden test: random_crop_flip makes a small CNN generalise better from 100 training digits (Chapter 6, section 6.2).

The grader's own setting, all of it drawn from fresh_generator() on the trusted side: 10 training digits per class
(16x16, chosen at random among scikit-learn's 1797), the initial weights, the 200 mini-batches of 32, and the
held-out test set (every other digit), moved by a random shift of up to 2 pixels in each direction and mirrored
left-right half of the time: the variations that random crops with padding 2 and horizontal flips encode. The same
network is trained twice with the same initial weights and batches by the grader's loop (Adam, lr 0.01): here
without augmentation, and in the student's kernel with each batch passed through random_crop_flip(batch, 2, g).
Both are judged here, on the test digits, whose images and labels never leave the trusted side; the augmented
network must be right on at least 10 points more of them. The bound is explained in THRESHOLDS.md.
"""
import torch

from dlvision.data import jitter, load_digits, upsample
from dlvision.grading import fresh_generator, points

SETUP = {"per_class": 10, "steps": 200, "batch": 32, "lr": 0.01, "padding": 2, "shift": 2}
MARGIN = 0.10


# --- scenario: runs in the student's kernel (and, without augmentation, here) ------------------------------------

def train_net(X, y, batches, init, lr, augment, padding, seed):
    """The grader's loop: a fixed small CNN from the weights `init`, one Adam step per mini-batch of `batches`, each
    batch passed through random_crop_flip(batch, padding, g) if `augment`; returns the learned weights."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is fastest, and steady on a busy machine
    try:
        net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(16 * 4 * 4, 10))
        net.load_state_dict(init)
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        g = torch.Generator().manual_seed(seed)
        for index in batches:
            images = X[index]
            if augment:
                images = random_crop_flip(images, padding, g)
            loss = torch.nn.functional.cross_entropy(net(images), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return {name: value.detach().clone() for name, value in net.state_dict().items()}
    finally:
        torch.set_num_threads(threads)


def one_call(images, padding, seed):
    """One call of random_crop_flip, for the check that comes before the training runs."""
    import torch

    return random_crop_flip(images, padding, torch.Generator().manual_seed(seed))


# --- helpers on the trusted side -------------------------------------------------------------------------------

def is_a_window(out, image, padding):
    """Whether `out` is an H x W window of `image` (C, H, W) padded with zeros, mirrored left-right or not."""
    C, H, W = image.shape
    padded = torch.zeros(C, H + 2 * padding, W + 2 * padding, dtype=image.dtype)
    padded[:, padding:padding + H, padding:padding + W] = image
    windows = padded.unfold(1, H, 1).unfold(2, W, 1)  # (C, 2p + 1, 2p + 1, H, W)
    windows = windows.permute(1, 2, 0, 3, 4).reshape(-1, C, H, W)
    return bool(((windows == out).flatten(1).all(1) | (windows.flip(-1) == out).flatten(1).all(1)).any())

def network():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16 * 4 * 4, 10))


def digits_task(g):
    """Training digits, test digits (shifted, half of them mirrored), batches, initial weights and the augmentation
    seed, all drawn from g."""
    s = SETUP
    X_all, y_all, _, _ = load_digits(test_fraction=0.0)
    X_all = upsample(X_all, 16)
    order = torch.randperm(len(y_all), generator=g)
    train = torch.cat([order[y_all[order] == digit][:s["per_class"]] for digit in range(10)])
    held_out = torch.ones(len(y_all), dtype=torch.bool)
    held_out[train] = False
    test = held_out.nonzero()[:, 0]
    X_test = jitter(X_all[test], max_shift=s["shift"], generator=g)[:, None]
    mirrored = torch.rand(len(test), generator=g) < 0.5
    X_test = torch.where(mirrored[:, None, None, None], X_test.flip(-1), X_test)
    batches = torch.randint(0, len(train), (s["steps"], s["batch"]), generator=g)
    init_seed, augment_seed = (int(v) for v in torch.randint(0, 2 ** 31 - 1, (2,), generator=g))
    torch.manual_seed(init_seed)
    init = network().state_dict()
    return X_all[train][:, None], y_all[train], X_test, y_all[test], batches, init, augment_seed


def accuracy(weights, X, y):
    net = network()
    net.load_state_dict(weights)
    with torch.no_grad():
        return (net(X).argmax(1) == y).double().mean().item()


# --- test ------------------------------------------------------------------------------------------------------

@points(3)
def test_augmentation_raises_held_out_accuracy_on_100_digits(student):
    """trained by the grader's loop on 100 digits, the network with your random_crop_flip is right on at least 10
    points more of the off-centre, half-mirrored held-out digits than the same network without augmentation"""
    s = SETUP
    X, y, X_test, y_test, batches, init, seed = digits_task(fresh_generator())
    probe = student.run(one_call, X[:20], s["padding"], seed)
    assert isinstance(probe, torch.Tensor) and probe.shape == X[:20].shape and all(
        is_a_window(probe[i], X[i], s["padding"]) for i in range(20)), (
        f"random_crop_flip(20 training digits, padding={s['padding']}, g) should return 20 windows of the zero-padded "
        "digits (mirrored left-right or not), of the input's shape; it does not, so the network is not trained. Fix "
        "the tests of random_crop_flip first.")
    augmented = student.run(train_net, X, y, batches, init, s["lr"], True, s["padding"], seed, timeout=60)
    plain = train_net(X, y, batches, init, s["lr"], False, s["padding"], seed)
    assert isinstance(augmented, dict) and set(augmented) == set(plain), (
        "the grader's training loop did not return the network's weights.")
    without, with_augmentation = accuracy(plain, X_test, y_test), accuracy(augmented, X_test, y_test)
    assert with_augmentation - without >= MARGIN, (
        f"trained on 100 digits with random_crop_flip(batch, padding={s['padding']}, g) on every batch, the network "
        f"is right on {with_augmentation:.1%} of the held-out digits (shifted by up to {s['shift']} pixels, half of "
        f"them mirrored), against {without:.1%} without augmentation; required: at least {MARGIN:.0%} more (a correct "
        "random_crop_flip gains about 17 to 39 points). If the tests of random_crop_flip fail, fix those first.")
