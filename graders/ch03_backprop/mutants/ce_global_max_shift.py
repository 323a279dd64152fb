# mutant: softmax_cross_entropy shifted by the batch's global maximum instead of each row's: -inf / nan when rows differ by ~1e3
# replaces: softmax_cross_entropy
# caught-by: test_softmax_cross_entropy
def softmax_cross_entropy(logits, y):
    """The mean softmax cross-entropy of a batch, and its gradient with respect to the logits."""
    N = logits.shape[0]
    shifted = logits - logits.max()
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    rows = torch.arange(N, device=logits.device)
    loss = -log_probs[rows, y].mean()
    dlogits = log_probs.exp()
    dlogits[rows, y] -= 1
    return loss, dlogits / N
