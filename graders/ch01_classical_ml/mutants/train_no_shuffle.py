# mutant: SGD that visits the samples in the same order every epoch (no shuffling)
# replaces: train_linear
# caught-by: test_train_linear
def train_linear(loss_fn, X, y, lr, reg, epochs, batch_size, generator):
    """Train a linear classifier W (D, C) by minibatch SGD on loss_fn."""
    N, D = X.shape
    C = int(y.max()) + 1
    W = (0.001 * torch.randn(D, C, generator=generator, dtype=X.dtype)).to(X.device)
    for _ in range(epochs):
        for start in range(0, N, batch_size):
            _, dW = loss_fn(W, X[start:start + batch_size], y[start:start + batch_size], reg)
            W = W - lr * dW
    return W
