# mutant: softmax gradient X.T @ P / N, forgetting to subtract the one-hot labels (training goes nowhere)
# replaces: softmax_loss
# caught-by: test_softmax_loss
def softmax_loss(W, X, y, reg):
    """Softmax (cross-entropy) loss and its gradient, vectorised."""
    N = X.shape[0]
    scores = X @ W
    scores = scores - scores.amax(dim=1, keepdim=True)
    log_probs = scores - scores.exp().sum(dim=1, keepdim=True).log()
    rows = torch.arange(N, device=X.device)
    loss = -log_probs[rows, y].mean() + reg * (W * W).sum()
    dW = X.T @ log_probs.exp() / N + 2 * reg * W
    return loss, dW
