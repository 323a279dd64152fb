# mutant: softmax loss without the max shift: exp overflows to inf for large scores
# replaces: softmax_loss
# caught-by: test_softmax_loss
def softmax_loss(W, X, y, reg):
    """Softmax (cross-entropy) loss and its gradient, vectorised."""
    N = X.shape[0]
    exp_scores = (X @ W).exp()
    probs = exp_scores / exp_scores.sum(dim=1, keepdim=True)
    rows = torch.arange(N, device=X.device)
    loss = -probs[rows, y].log().mean() + reg * (W * W).sum()
    dscores = probs.clone()
    dscores[rows, y] -= 1
    dW = X.T @ dscores / N + 2 * reg * W
    return loss, dW
