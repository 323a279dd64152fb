# mutant: SVM loss that sums the margins over all classes, the true class's own margin of 1 included
# replaces: svm_loss
# caught-by: test_svm_loss
def svm_loss(W, X, y, reg):
    """Multiclass SVM (hinge) loss with margin 1 and its gradient, vectorised."""
    N = X.shape[0]
    scores = X @ W
    rows = torch.arange(N, device=X.device)
    margins = (scores - scores[rows, y][:, None] + 1).clamp_min(0)
    loss = margins.sum() / N + reg * (W * W).sum()
    dscores = (margins > 0).to(X.dtype)
    dscores[rows, y] = 0
    dscores[rows, y] = -dscores.sum(dim=1)
    dW = X.T @ dscores / N + 2 * reg * W
    return loss, dW
