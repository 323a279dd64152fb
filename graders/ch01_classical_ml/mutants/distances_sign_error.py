# mutant: a sign error in the trick, |x|^2 + 2 x.y + |y|^2 (that is |x + y|^2)
# replaces: pairwise_sq_distances
# caught-by: test_distances
def pairwise_sq_distances(X, Y):
    """Squared Euclidean distances between every row of X and every row of Y."""
    x_sq = (X * X).sum(dim=1, keepdim=True)
    y_sq = (Y * Y).sum(dim=1)
    return (x_sq + 2 * (X @ Y.T) + y_sq).clamp_min(0)
