# mutant: a stable sigmoid computed on x.detach(), so no gradient flows back to x
# replaces: sigmoid
# caught-by: test_activations
def sigmoid(x):
    """The logistic sigmoid 1 / (1 + exp(-x)), elementwise."""
    x = x.detach()
    e = torch.exp(-x.abs())
    return torch.where(x >= 0, 1 / (1 + e), e / (1 + e))
