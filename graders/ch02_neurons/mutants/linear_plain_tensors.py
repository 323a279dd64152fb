# mutant: Linear that keeps weight and bias as plain tensors, so they are not registered as parameters and get no gradient
# replaces: linear
# caught-by: test_linear
class Linear(torch.nn.Module):
    """A fully connected layer."""

    def __init__(self, in_features, out_features):
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.weight = torch.empty(out_features, in_features).uniform_(-bound, bound)
        self.bias = torch.empty(out_features).uniform_(-bound, bound)

    def forward(self, x):
        return x @ self.weight.T + self.bias
