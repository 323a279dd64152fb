# mutant: a correct, stable softmax that loops over the slices in Python (far too slow on a large batch)
# replaces: softmax
# caught-by: test_softmax
def softmax(x, dim=-1):
    """Softmax along dim."""
    moved = x.movedim(dim, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    out = []
    for row in rows:
        e = torch.exp(row - row.max())
        out.append(e / e.sum())
    return torch.stack(out).reshape(moved.shape).movedim(-1, dim)
