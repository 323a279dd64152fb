# mutant: k-means whose update step sums the cluster's points instead of averaging them
# replaces: kmeans
# caught-by: test_kmeans
def kmeans(X, k, iters, generator):
    """K-means clustering with k-means++ initialisation."""
    N = X.shape[0]
    centroids = X[torch.randint(N, (1,), generator=generator).to(X.device)]
    for _ in range(1, k):
        weights = pairwise_sq_distances(X, centroids).amin(dim=1).double().cpu()
        if weights.sum() == 0:
            weights = torch.ones(N, dtype=torch.float64)
        pick = torch.multinomial(weights, 1, generator=generator).to(X.device)
        centroids = torch.cat([centroids, X[pick]])
    for _ in range(iters):
        labels = pairwise_sq_distances(X, centroids).argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, labels, X)
        counts = torch.bincount(labels, minlength=k)[:, None]
        centroids = torch.where(counts > 0, sums, centroids)
    return centroids, labels
