# mutant: explained variance ratios divided by the variance of the first k components only, not of all
# replaces: pca
# caught-by: test_pca
def pca(X, k):
    """Principal components of X by SVD of the centred data."""
    centred = X - X.mean(dim=0, keepdim=True)
    _, S, Vh = torch.linalg.svd(centred, full_matrices=False)
    variance = S[:k] * S[:k]
    return Vh[:k], variance / variance.sum()
