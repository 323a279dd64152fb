# mutant: softmax_cross_entropy as log(softmax) without the max shift: inf / nan for large logits
# replaces: softmax_cross_entropy
# caught-by: test_softmax_cross_entropy
def softmax_cross_entropy(logits, y):
    """The mean softmax cross-entropy of a batch, and its gradient with respect to the logits."""
    N = logits.shape[0]
    e = logits.exp()
    probs = e / e.sum(dim=1, keepdim=True)
    rows = torch.arange(N, device=logits.device)
    loss = -probs[rows, y].log().mean()
    dlogits = probs.clone()
    dlogits[rows, y] -= 1
    return loss, dlogits / N
