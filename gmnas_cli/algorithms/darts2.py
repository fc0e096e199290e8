"""DARTS second order (Liu et al. 2019, Eqns. 6-8): the unrolled architecture gradient.

    w'   = w - xi * step_SGD(w)                 (one virtual step of the weight optimizer)
    g_a  = d_a L_val(w', a) - c * (d_a L_train(w+, a) - d_a L_train(w-, a)) / (2 eps)
    w+-  = w +- eps * d_w' L_val(w', a),   eps = unrolled_eps / ||d_w' L_val(w', a)||

``xi`` is the optimizer's current learning rate (DARTS' choice). ``algo.unrolled_step=official``
(default) is DARTS' and GM-NAS' ``_compute_unrolled_model``: d = grad + weight_decay * w,
step = momentum * buf + d (buf: the optimizer's momentum buffer, 0 before the first step), c = xi,
with or without Nesterov. ``exact`` is what ``torch.optim.SGD`` would apply: buf' = momentum * buf
+ (1 - dampening) d, step = buf' (or d + momentum * buf' with Nesterov), and c = d(step)/d(grad)
times xi: xi, or xi * (1 + momentum) with Nesterov, so that g_a is the derivative of
L_val(w'(a), a). Without Nesterov (and dampening 0) both are the same step. Parameters that got no
gradient (disabled or `none` ops) are not moved, as SGD would not move them. Weights and BN buffers
are restored exactly afterwards (gradients come from ``autograd.grad``, so no ``.grad`` field of
the weights is touched); only alpha, its gradient and its optimizer change.

The whole step runs in fp32 whatever ``amp`` says: bf16 cannot resolve the finite-difference
perturbation eps = 0.01 / ||v|| (the official code is fp32 throughout).
"""

from __future__ import annotations

import torch

from gmnas_cli.algorithms.base import Algorithm, Batch, LossFn, forward_loss
from gmnas_cli.config.derived import option
from gmnas_cli.infra.distributed import shard_grads


def _sgd_settings(opt: torch.optim.Optimizer) -> dict[torch.Tensor, dict]:
    """Per parameter, its SGD group (lr, momentum, weight_decay, nesterov, dampening)."""
    return {p: g for g in opt.param_groups for p in g["params"]}


def unrolled_arch_grad(algo: Algorithm, train_batch: Batch, val_batch: Batch, loss_fn: LossFn,
                       w_optimizer: torch.optim.Optimizer) -> tuple[torch.Tensor, float]:
    """The second-order gradient of alpha and the validation loss at w' (fp32); the net is left as found."""
    with torch.autocast(device_type=algo.alpha.device.type, enabled=False):
        return _unrolled_arch_grad_fp32(algo, train_batch, val_batch, loss_fn, w_optimizer)


def _unrolled_arch_grad_fp32(algo: Algorithm, train_batch: Batch, val_batch: Batch, loss_fn: LossFn,
                             w_optimizer: torch.optim.Optimizer) -> tuple[torch.Tensor, float]:
    net, alpha = algo.net, algo.alpha
    exact = option(algo.cfg.unrolled_step) == "exact"
    params = [p for p in net.parameters() if p.requires_grad]
    groups = _sgd_settings(w_optimizer)
    saved = [p.detach().clone() for p in params]
    buffers = [b.detach().clone() for b in net.buffers()]

    # 1) w' = w - xi * step, the optimizer's own step from the training loss.
    g_train, _ = shard_grads(lambda b: forward_loss(net, b, algo.probabilities().detach(), None, loss_fn), train_batch, params)  # data parallel: mean over shards/ranks
    coef = 0.0  # d w' / d grad: xi (official), or xi * (1 + momentum) with exact Nesterov
    with torch.no_grad():
        for p, g in zip(params, g_train):
            if g is None:
                continue
            s = groups[p]
            lr, mu, wd = float(s["lr"]), float(s["momentum"]), float(s["weight_decay"])
            d = g + wd * p if wd else g
            buf = w_optimizer.state.get(p, {}).get("momentum_buffer")
            if not exact:  # official _compute_unrolled_model: w - eta * (momentum * buf + d)
                step = d + mu * buf if (mu and buf is not None) else d
                coef = lr
            else:
                if mu:
                    buf = d.clone() if buf is None else buf * mu + (1.0 - float(s["dampening"])) * d
                    step = d + mu * buf if s["nesterov"] else buf
                else:
                    step = d
                coef = lr * ((1.0 + mu) if (mu and s["nesterov"]) else 1.0)
            p.sub_(lr * step)

    # 2) d_a and d_w' of L_val(w', a).
    g_val, loss_val = shard_grads(lambda b: forward_loss(net, b, algo.probabilities(), None, loss_fn), val_batch, [alpha, *params])  # data parallel: mean over shards/ranks
    d_alpha = g_val[0] if g_val[0] is not None else torch.zeros_like(alpha)
    d_w = g_val[1:]
    norm = sum(float(g.detach().double().pow(2).sum()) for g in d_w if g is not None) ** 0.5

    # 3) Finite-difference Hessian-vector product around the original weights w.
    hvp = torch.zeros_like(alpha)
    if coef > 0 and norm > 0:
        eps = float(algo.cfg.unrolled_eps) / norm
        grads_pm = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for p, w0, v in zip(params, saved, d_w):
                    p.copy_(w0)
                    if v is not None:
                        p.add_(v, alpha=sign * eps)
            g = shard_grads(lambda b: forward_loss(net, b, algo.probabilities(), None, loss_fn), train_batch, [alpha])[0][0]  # data parallel: mean over shards/ranks
            grads_pm.append(g if g is not None else torch.zeros_like(alpha))
        hvp = (grads_pm[0] - grads_pm[1]) / (2.0 * eps)

    with torch.no_grad():  # restore weights and BN statistics exactly
        for p, w0 in zip(params, saved):
            p.copy_(w0)
        for b, b0 in zip(net.buffers(), buffers):
            b.copy_(b0)
    return (d_alpha - coef * hvp).detach(), float(loss_val.detach())


def second_order_step(algo: Algorithm, train_batch: Batch, val_batch: Batch, loss_fn: LossFn,
                      w_optimizer: torch.optim.Optimizer) -> float:
    """One DARTS (2nd order) update of alpha by its Adam; returns the validation loss at w'."""
    grad, loss = unrolled_arch_grad(algo, train_batch, val_batch, loss_fn, w_optimizer)
    algo.arch_optimizer.zero_grad(set_to_none=True)
    algo.alpha.grad = grad.to(algo.alpha.dtype)
    algo.arch_optimizer.step()
    return loss
