# mutant: correct distances computed with a Python loop over the rows of X (far too slow)
# replaces: pairwise_sq_distances
# caught-by: test_distances
def pairwise_sq_distances(X, Y):
    """Squared Euclidean distances between every row of X and every row of Y."""
    out = torch.empty(X.shape[0], Y.shape[0], dtype=X.dtype, device=X.device)
    for i in range(X.shape[0]):
        out[i] = ((X[i] - Y) ** 2).sum(dim=1)
    return out
