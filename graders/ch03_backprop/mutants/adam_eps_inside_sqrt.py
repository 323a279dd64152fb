# mutant: adam_step with eps inside the square root, sqrt(v_hat + eps)
# replaces: adam_step
# caught-by: test_update_rules
def adam_step(params, grads, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    """One step of Adam, PyTorch's convention (bias-corrected moments, eps added to sqrt(v_hat)).

    params, grads: dicts with the same keys, of tensors of matching shapes. state: a dict, {} before the first
    step, then the same dict every step. betas = (beta1, beta2).
    Updates params in place and returns None. Off limits: torch.optim.
    """
    beta1, beta2 = betas
    t = state["t"] = state.get("t", 0) + 1
    moments = state.setdefault("moments", {})
    for name, grad in grads.items():
        m, v = moments.get(name, (torch.zeros_like(grad), torch.zeros_like(grad)))
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        moments[name] = (m, v)
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        params[name] = params[name] - lr * m_hat / (v_hat + eps).sqrt()
