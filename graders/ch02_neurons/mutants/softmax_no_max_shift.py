# mutant: softmax without the max shift: exp overflows for large logits and gives inf / inf = nan
# replaces: softmax
# caught-by: test_softmax
def softmax(x, dim=-1):
    """Softmax along dim."""
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)
