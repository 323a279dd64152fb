# mutant: softmax_cross_entropy that sums over the batch instead of averaging (loss and dlogits N times too large)
# replaces: softmax_cross_entropy
# caught-by: test_softmax_cross_entropy
def softmax_cross_entropy(logits, y):
    """The mean softmax cross-entropy of a batch, and its gradient with respect to the logits."""
    N = logits.shape[0]
    shifted = logits - logits.amax(dim=1, keepdim=True)
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    rows = torch.arange(N, device=logits.device)
    loss = -log_probs[rows, y].sum()
    dlogits = log_probs.exp()
    dlogits[rows, y] -= 1
    return loss, dlogits
