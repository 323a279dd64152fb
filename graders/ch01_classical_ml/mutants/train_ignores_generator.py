# mutant: SGD that draws its initial weights and permutations from the global random state, not the generator
# replaces: train_linear
# caught-by: test_train_linear
def train_linear(loss_fn, X, y, lr, reg, epochs, batch_size, generator):
    """Train a linear classifier W (D, C) by minibatch SGD on loss_fn."""
    N, D = X.shape
    C = int(y.max()) + 1
    W = (0.001 * torch.randn(D, C, dtype=X.dtype)).to(X.device)
    for _ in range(epochs):
        order = torch.randperm(N).to(X.device)
        for start in range(0, N, batch_size):
            batch = order[start:start + batch_size]
            _, dW = loss_fn(W, X[batch], y[batch], reg)
            W = W - lr * dW
    return W
