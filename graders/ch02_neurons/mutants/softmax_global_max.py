# mutant: softmax shifted by the maximum of the whole tensor instead of each slice's maximum
# replaces: softmax
# caught-by: test_softmax
def softmax(x, dim=-1):
    """Softmax along dim."""
    e = torch.exp(x - x.max())
    return e / e.sum(dim=dim, keepdim=True)
