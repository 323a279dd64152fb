# mutant: log_softmax as log(softmax(x)): -inf where a probability underflows to 0
# replaces: log_softmax
# caught-by: test_softmax
def log_softmax(x, dim=-1):
    """log(softmax(x)) along dim."""
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    return torch.log(e / e.sum(dim=dim, keepdim=True))
