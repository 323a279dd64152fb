# mutant: relative_error as max|a - b| / max(|a| + |b|), a ratio of maxima instead of the maximum of the ratios
# replaces: relative_error
# caught-by: test_gradient_check
def relative_error(a, b):
    """max over entries of |a - b| / max(1e-8, |a| + |b|), as a Python float."""
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / (a.abs() + b.abs()).max().clamp(min=1e-8)).item()
