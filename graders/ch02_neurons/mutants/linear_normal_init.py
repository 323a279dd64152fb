# mutant: Linear initialised with torch.randn (standard normal) instead of uniform in [-1/sqrt(in), 1/sqrt(in)]
# replaces: linear
# caught-by: test_linear
class Linear(torch.nn.Module):
    """A fully connected layer."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(out_features, in_features))
        self.bias = torch.nn.Parameter(torch.randn(out_features))

    def forward(self, x):
        return x @ self.weight.T + self.bias
