"""Hidden tests for kmeans (Chapter 1, section 3.2).

Behaviour, not one particular random draw (the contract leaves the exact draws of k-means++ open): well-separated
blobs must be found exactly; the returned centroids must be the means of the returned clusters, after any number
of rounds; the randomness must come from the generator; and on the digits the clustering must be as tight as a
reference k-means's (scikit-learn's KMeans). Every verdict is computed here from the labels that come back.

The digits test uses data the student's code cannot reproduce or look up: a fresh random subset of the bundled
digits, with fresh noise, in coordinates turned by a fresh random rotation (k-means only sees distances, which a
rotation keeps). Its quality measure is the inertia of the returned partition (each cluster around its own mean,
computed here), over the reference's: the true digit labels themselves are well above the bound, so knowing them
earns nothing (THRESHOLDS.md has the measurements).
"""
import secrets

import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from dlvision.data import load_digits
from dlvision.grading import expect_close, expect_keeps_device, fresh_generator, points, requires

#: The digits run: k=10 clusters of DIGITS_N fresh digits, DIGITS_ITERS rounds, the best of DIGITS_RUNS seeds by
#: inertia, which may exceed the reference's best by at most INERTIA_BOUND (THRESHOLDS.md).
DIGITS_K, DIGITS_N, DIGITS_NOISE, DIGITS_ITERS, DIGITS_RUNS, INERTIA_BOUND = 10, 1500, 0.05, 30, 10, 1.03

UPDATE_HINT = ("Each round: labels = the index of the nearest centroid (pairwise_sq_distances(X, centroids)."
               "argmin(dim=1)); then every centroid becomes the MEAN of the points with its label (sum divided by "
               "count; a cluster with no points keeps its centroid). Return the centroids after the last update "
               "and the labels of the last assignment.")
START_HINT = ("k-means++: the first centroid is a uniformly random point, each next one a point drawn with "
              "probability proportional to its squared distance to the nearest centroid so far.")
SINGLE_HINT = "A cluster with a single point moves onto that point (its mean): divide each sum by its own count."
EMPTY_HINT = ("A cluster that receives no points keeps its centroid: update only where the count is positive "
              "(torch.where(counts > 0, sums / counts.clamp_min(1), centroids)). And when every point already "
              "coincides with a chosen centroid (duplicated points), the k-means++ weights are all 0: draw the next "
              "centroid uniformly instead.")
GENERATOR_HINT = ("Draw every random number from `generator` (torch.randint(..., generator=generator), "
                  "torch.multinomial(..., generator=generator)): never from the global random state, and not a "
                  "fixed start such as the first k points.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def kmeans_with_seeds(X, k, iters, seeds):
    """The student's kmeans on X once per seed, each with a fresh generator."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is fastest, and immune to a busy second core
    try:
        return [kmeans(X, k, iters, torch.Generator().manual_seed(seed)) for seed in seeds]
    finally:
        torch.set_num_threads(threads)


def kmeans_on_device(X, k, iters, seed, device="cpu"):
    """kmeans with a fresh generator, for expect_keeps_device (which moves X)."""
    import torch

    return kmeans(X, k, iters, torch.Generator().manual_seed(seed))


# --- helpers on the trusted side -------------------------------------------------------------------------------

def blobs(seed, dtype, spread=0.01):
    """Four blobs of different sizes in 3-D, 10 apart, shuffled; returns (X, true labels). With the default spread
    they are so tight that k-means++ practically always starts with one centroid in each (THRESHOLDS.md)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]],
                           dtype=torch.float64)
    sizes = [25, 10, 40, 5]
    X = torch.cat([c + spread * torch.randn(n, 3, generator=g, dtype=torch.float64) for c, n in zip(centres, sizes)])
    y = torch.arange(4).repeat_interleave(torch.tensor(sizes))
    order = torch.randperm(len(y), generator=g)
    return X[order].to(dtype), y[order]


def fresh_digits(generator, n, noise):
    """n of the 1797 digits as rows of 64 pixels, drawn at random, with fresh noise, turned by a fresh random
    rotation of the 64-dimensional space; returns (X float32, labels)."""
    X_train, y_train, X_test, y_test = load_digits()
    X = torch.cat([X_train, X_test]).reshape(-1, 64).double()
    y = torch.cat([y_train, y_test])
    chosen = torch.randperm(len(y), generator=generator)[:n]
    X = X[chosen] + noise * torch.randn(n, 64, generator=generator, dtype=torch.float64)
    rotation, _ = torch.linalg.qr(torch.randn(64, 64, generator=generator, dtype=torch.float64))
    return (X @ rotation).float(), y[chosen]


def kind_of(value):
    """What came back, in words: 'a tensor of shape (3, 4)', 'a tuple of 3 items', 'float'."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return type(value).__name__


def check_shapes(result, X, k, what):
    """(centroids, labels) on the CPU, after checking their types, shapes, dtypes and range."""
    assert isinstance(result, (tuple, list)) and len(result) == 2, (
        f"kmeans should return a pair (centroids, labels), got {kind_of(result)} for {what}.")
    centroids, labels = result
    assert isinstance(centroids, torch.Tensor) and centroids.shape == (k, X.shape[1]) and centroids.dtype == X.dtype, (
        f"centroids should be a {str(X.dtype).removeprefix('torch.')} tensor of shape {(k, X.shape[1])} for {what}, "
        f"got {centroids.dtype if isinstance(centroids, torch.Tensor) else type(centroids).__name__} of shape "
        f"{tuple(centroids.shape) if isinstance(centroids, torch.Tensor) else '?'}.")
    assert isinstance(labels, torch.Tensor) and labels.shape == (len(X),) and labels.dtype == torch.int64, (
        f"labels should be an int64 tensor of shape {(len(X),)} for {what}, got "
        f"{labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__}.")
    assert len(X) == 0 or (labels.min() >= 0 and labels.max() < k), f"labels should lie in 0..{k - 1} for {what}."
    return centroids.cpu(), labels.cpu()


def partition_inertia(X, labels):
    """The sum of squared distances of the points to the mean of their own cluster (a property of the labels)."""
    X = X.double()
    total = 0.0
    for c in labels.unique():
        members = X[labels == c]
        total += ((members - members.mean(dim=0)) ** 2).sum().item()
    return total


def reference_inertia(X, k, runs):
    """The inertia of scikit-learn's k-means++ k-means, best of ``runs`` starts, run to convergence."""
    fitted = KMeans(n_clusters=k, init="k-means++", n_init=runs, max_iter=100,
                    random_state=secrets.randbits(31)).fit(X.double().numpy())
    return partition_inertia(X, torch.from_numpy(fitted.labels_).long())


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The references here are small tensors: run them on one thread. With the process's default (one thread per
    core), small operations on a busy 2-core machine stall for milliseconds each (THRESHOLDS.md, "Timing")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_kmeans_finds_well_separated_blobs(student):
    """kmeans recovers four far-apart blobs exactly, each centroid the mean of its points (float32 and float64)"""
    for dtype in (torch.float32, torch.float64):
        X, y = blobs(1, dtype)
        for seed, result in zip((0, 1, 2), student.run(kmeans_with_seeds, X, 4, 10, (0, 1, 2))):
            what = (f"four tight blobs of 5 to 40 points, 10 apart, k=4, iters=10, seed {seed}, "
                    f"{str(dtype).removeprefix('torch.')}")
            centroids, labels = check_shapes(result, X, 4, what)
            ari = adjusted_rand_score(y.numpy(), labels.numpy())
            assert ari == 1.0, (
                f"kmeans split four well-separated blobs wrongly ({what}; adjusted Rand index {ari:.2f}, 1 expected). "
                f"k-means++ should start with one centroid in each blob. {START_HINT} {UPDATE_HINT}")
            means = torch.stack([X[labels == c].mean(dim=0) for c in range(4)])
            expect_close(centroids, means, name=f"the centroids ({what}) vs the means of their clusters",
                         hint=UPDATE_HINT)


@points(1)
@requires("test_kmeans_finds_well_separated_blobs")
def test_kmeans_returns_the_means_of_its_last_assignment(student):
    """after 1, 2 or 3 rounds (overlapping clusters, single points, duplicates), each centroid is the mean of the points
    labelled with it, and a cluster without points keeps its centroid"""
    X, _ = blobs(2, torch.float64, spread=3.0)  # overlapping: the clusters still change from round to round
    for iters in (1, 2, 3):
        for seed, result in zip((3, 4), student.run(kmeans_with_seeds, X, 5, iters, (3, 4))):
            what = f"80 overlapping points in 3-D, k=5, iters={iters}, seed {seed}"
            centroids, labels = check_shapes(result, X, 5, what)
            used = labels.unique()
            means = torch.stack([X[labels == c].mean(dim=0) for c in used])
            expect_close(centroids[used], means, name=f"the centroids of the non-empty clusters ({what}) vs the "
                         "means of the points with their label", hint=UPDATE_HINT)
    # Small clusters: some hold a single point, whose mean is that point (also after the centroid was the mean of
    # more points in an earlier round); and fewer points than features (N = 4, D = 64).
    cases = [(torch.randn(n, d, generator=torch.Generator().manual_seed(data), dtype=torch.float64), k, iters, seeds)
             for n, d, k, iters, data, seeds in ((24, 2, 12, 1, 5, (5, 6)), (24, 2, 12, 3, 5, (5, 6)),
                                                 (12, 2, 5, 3, 103, (15,)), (12, 2, 5, 3, 105, (1,)),
                                                 (12, 2, 5, 3, 106, (6,)), (4, 64, 2, 2, 7, (10, 11, 12, 13, 14)))]
    for small, k, iters, seeds in cases:
        for seed, result in zip(seeds, student.run(kmeans_with_seeds, small, k, iters, seeds)):
            what = f"{len(small)} random points in {small.shape[1]}-D, k={k}, iters={iters}, seed {seed}"
            centroids, labels = check_shapes(result, small, k, what)
            used = labels.unique()
            means = torch.stack([small[labels == c].mean(dim=0) for c in used])
            expect_close(centroids[used], means, name=f"the centroids of the non-empty clusters ({what}) vs the "
                         "means of the points with their label", hint=UPDATE_HINT + " " + SINGLE_HINT)
    # Duplicated points, k = 4 but 3 distinct points: k-means++ runs out of points with a positive weight (any
    # point will do), and a centroid on top of another one receives no points in the round: it keeps its start,
    # which is a data point.
    twins = torch.tensor([[1.0, 2.0], [5.0, 1.0], [2.0, 6.0]], dtype=torch.float64).repeat(2, 1)
    for seed, result in zip((7, 8, 9), student.run(kmeans_with_seeds, twins, 4, 1, (7, 8, 9))):
        what = f"3 distinct points, each twice, k=4, iters=1, seed {seed}"
        centroids, labels = check_shapes(result, twins, 4, what)
        for c in range(4):
            if (labels == c).any():
                expect_close(centroids[c], twins[labels == c].mean(dim=0), name=f"centroid {c} ({what}) vs the mean "
                             "of the points with its label", hint=UPDATE_HINT)
            else:
                assert (centroids[c] == twins).all(dim=1).any(), (
                    f"centroid {c} received no points ({what}) and should have kept its k-means++ start, one of the "
                    f"data points, but it is {centroids[c].tolist()}. {EMPTY_HINT}")
    # The docstring's "dtype and device of X" and "on the device of X", on a GPU or the stand-in: it can only fail
    # this test. The stand-in has no values, so it stops at the first one kmeans needs (k-means++ with k > 1 reads
    # its weights, counting the labels makes a shape from them): k = 1 reaches the first update.
    for k in (1, 5):
        expect_keeps_device(student, kmeans_on_device, X.float(), k, 2, 0, hint=(
            "kmeans must work on any device and return centroids and labels on the device of X: make the sums and "
            "counts of the update with torch.zeros_like(centroids) or device=X.device (a torch.zeros(k, D) without "
            "device= lives on the CPU), and move what the CPU generator draws (torch.randint, torch.multinomial) to "
            "X.device before indexing X with it."))


@points(1)
@requires("test_kmeans_finds_well_separated_blobs")
def test_kmeans_draws_its_randomness_from_the_generator(student):
    """two generators with the same seed give the same result, and generators with other seeds other starts"""
    X, _ = blobs(3, torch.float64, spread=3.0)
    seeds = (7, 7, 8, 9, 10, 11)
    what = "80 overlapping points in 3-D, k=5, iters=1"
    results = [check_shapes(r, X, 5, f"{what}, seed {s}")
               for s, r in zip(seeds, student.run(kmeans_with_seeds, X, 5, 1, seeds))]
    (c1, l1), (c2, l2) = results[:2]
    assert torch.equal(l1, l2) and torch.equal(c1, c2), (
        f"two runs of kmeans with torch.Generator().manual_seed(7) gave different results ({what}). {GENERATOR_HINT}")
    assert any(not torch.equal(c, c1) for c, _ in results[2:]), (
        f"kmeans gave the same centroids for the seeds 7, 8, 9, 10 and 11 ({what}): it does not use the generator "
        f"for its start. {START_HINT} {GENERATOR_HINT}")


@points(1)
def test_kmeans_clusters_fresh_digits_as_tightly_as_the_reference(student):
    """on 1500 fresh digits (noisy, rotated), the best of 10 runs is within 3% of a reference k-means's inertia"""
    X, y = fresh_digits(fresh_generator(), DIGITS_N, DIGITS_NOISE)
    seeds = tuple(secrets.randbits(31) for _ in range(DIGITS_RUNS))
    best = None
    for seed, result in zip(seeds, student.run(kmeans_with_seeds, X, DIGITS_K, DIGITS_ITERS, seeds, timeout=60)):
        _, labels = check_shapes(result, X, DIGITS_K, f"{DIGITS_N} digits, k={DIGITS_K}, iters={DIGITS_ITERS}")
        inertia = partition_inertia(X, labels)
        if best is None or inertia < best[0]:
            best = (inertia, labels)
    ratio = best[0] / reference_inertia(X, DIGITS_K, DIGITS_RUNS)
    ari = adjusted_rand_score(y.numpy(), best[1].numpy())
    assert ratio <= INERTIA_BOUND, (
        f"the best of {DIGITS_RUNS} k-means runs on {DIGITS_N} digits (k={DIGITS_K}, {DIGITS_ITERS} rounds) leaves "
        f"the points {ratio:.3f} times as far (sum of squared distances to their cluster's mean) as a reference "
        f"k-means; at most {INERTIA_BOUND} was expected (a correct k-means gets 0.99 to 1.01). Its clusters agree "
        f"with the true digits with an adjusted Rand index of {ari:.2f} (a correct k-means: about 0.65). "
        f"{UPDATE_HINT}")
