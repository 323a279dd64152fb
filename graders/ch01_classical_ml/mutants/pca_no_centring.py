# mutant: PCA by SVD of the raw data, without centring (the first component points at the mean)
# replaces: pca
# caught-by: test_pca
def pca(X, k):
    """Principal components of X by SVD."""
    _, S, Vh = torch.linalg.svd(X, full_matrices=False)
    variance = S * S
    return Vh[:k], variance[:k] / variance.sum()
