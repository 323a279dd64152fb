# mutant: softmax loss whose gradient forgets the regulariser's 2 * reg * W
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
    dscores = log_probs.exp()
    dscores[rows, y] -= 1
    dW = X.T @ dscores / N
    return loss, dW
