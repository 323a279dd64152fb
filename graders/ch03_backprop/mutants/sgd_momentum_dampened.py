# mutant: sgd_momentum_step with an exponential moving average, v = momentum * v + (1 - momentum) * g
# replaces: sgd_momentum_step
# caught-by: test_update_rules
def sgd_momentum_step(params, grads, state, lr, momentum=0.9):
    """One step of SGD with momentum, PyTorch's convention: v = g at the first step, then v = momentum * v + g;
    p = p - lr * v.

    params, grads: dicts with the same keys, of tensors of matching shapes. state: a dict, {} before the first
    step, then the same dict every step. lr may change from one step to the next.
    Updates params in place and returns None. Off limits: torch.optim.
    """
    for name, grad in grads.items():
        if name not in state:
            state[name] = grad.clone()
        else:
            state[name] = momentum * state[name] + (1 - momentum) * grad
        params[name] = params[name] - lr * state[name]
