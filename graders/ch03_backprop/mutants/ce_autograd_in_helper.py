# mutant: softmax_cross_entropy whose helper gets dlogits from torch.autograd.grad (right values, off limits)
# replaces: softmax_cross_entropy
# caught-by: test_softmax_cross_entropy
def _loss_and_gradient(logits, y):
    leaf = logits.detach().clone().requires_grad_(True)
    shifted = leaf - leaf.amax(dim=1, keepdim=True)
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    loss = -log_probs[torch.arange(logits.shape[0], device=logits.device), y].mean()
    (dlogits,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), dlogits


def softmax_cross_entropy(logits, y):
    """The mean softmax cross-entropy of a batch, and its gradient with respect to the logits."""
    return _loss_and_gradient(logits, y)
