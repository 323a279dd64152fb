# mutant: Linear that stores weight as (in_features, out_features) and computes x @ weight + bias
# replaces: linear
# caught-by: test_linear
class Linear(torch.nn.Module):
    """A fully connected layer."""

    def __init__(self, in_features, out_features):
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.weight = torch.nn.Parameter(torch.empty(in_features, out_features).uniform_(-bound, bound))
        self.bias = torch.nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))

    def forward(self, x):
        return x @ self.weight + self.bias
