"""Amortised neural posterior estimation with sbi: train, sample, evaluate densities, save and load.

Generic (any theta, any x; both rule graphs use it, it imports neither spectra/ nor chem/):

- :func:`train_npe`: sbi's ``posterior_nn(model=maf|nsf, hidden_features, num_transforms)`` trained by sbi's own
  trainer (``schedule="constant"``) or under a OneCycle schedule (``"onecycle"``). sbi z-scores theta and x per
  dimension inside the flow (``z_score_theta = z_score_x = "independent"``), so the network always sees
  standardised inputs; the mean and standard deviation are part of the saved network. No ``./sbi-logs``
  TensorBoard directory is written: a no-op tracker replaces sbi's default TensorBoard writer.
- :func:`sample`: batched rejection sampling from the flow (one call per batch of observations and round, kept
  inside the prior box as sbi's ``DirectPosterior`` does, without its per-observation loop).
- :func:`log_prob` / :func:`log_prob_grid`: flow densities.
- :func:`save_posterior` / :func:`load_posterior`: ``torch.save`` of the sbi posterior plus metadata.

The spectra graph's label parametrisations and its posterior object are in :mod:`galaxy_sbi.spectra.parametrisation`
and :mod:`galaxy_sbi.spectra.posterior`; dequantisation of grid-valued parameters in :mod:`.dequantise`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# sbi plumbing
# ---------------------------------------------------------------------------------------------


class NullTracker:
    """sbi ``Tracker`` that records nothing: keeps sbi from creating ./sbi-logs (TensorBoard) in the cwd."""

    log_dir = None

    def log_metric(self, name, value, step=None):
        pass

    def log_metrics(self, metrics, step=None):
        pass

    def log_params(self, params):
        pass

    def add_figure(self, name, figure, step=None):
        pass

    def flush(self):
        pass


def box_prior(low, high):
    """sbi BoxUniform on [low, high] (float32)."""
    from sbi.utils import BoxUniform

    return BoxUniform(
        torch.as_tensor(np.asarray(low), dtype=torch.float32), torch.as_tensor(np.asarray(high), dtype=torch.float32)
    )


def padded_box(theta: np.ndarray, pad: float = 0.05, min_width: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """Range of the training theta widened by ``pad`` of its width on each side (a constant column by min_width)."""
    theta = np.asarray(theta, float)
    lo, hi = theta.min(0), theta.max(0)
    width = np.maximum(hi - lo, min_width)
    return lo - pad * width, hi + pad * width


def train_npe(
    theta,
    x,
    prior,
    *,
    model: str = "maf",
    hidden_features: int = 8,
    num_transforms: int = 4,
    batch_size: int = 256,
    learning_rate: float = 5e-4,
    max_epochs: int = 200,
    stop_after_epochs: int = 20,
    seed: int = 0,
    validation_fraction: float = 0.1,
    num_bins: int = 10,
    schedule: str = "constant",
    tracker=None,
    validation_groups=None,
):
    """Train an sbi NPE; returns (posterior, summary with per-epoch losses, epochs, training time).

    ``schedule="constant"``: sbi's own trainer (Adam at ``learning_rate``, early stopping after
    ``stop_after_epochs`` epochs without a better validation loss). ``"onecycle"``: the same flow and loss
    (sbi's ``posterior_nn`` estimator, its ``loss``) under a OneCycle learning-rate schedule over exactly
    ``max_epochs`` epochs with peak ``learning_rate``, keeping the epoch of best validation loss. sbi's trainer
    has no schedule; at a constant rate the flow creeps towards its optimum for hundreds of epochs.
    ``validation_groups`` (onecycle only): a group label per simulation (e.g. its SFH); the validation part is then
    whole groups, so the best epoch is the one that generalises to unseen groups, not to other noise draws or
    [M/H] cells of the training groups."""
    import time

    from sbi.inference import NPE
    from sbi.neural_nets import posterior_nn

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    kwargs = {"num_bins": num_bins} if model == "nsf" else {}
    estimator = posterior_nn(
        model=model,
        hidden_features=hidden_features,
        num_transforms=num_transforms,
        z_score_theta="independent",
        z_score_x="independent",
        **kwargs,
    )
    theta = torch.as_tensor(np.asarray(theta), dtype=torch.float32)
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    start = time.perf_counter()
    if schedule == "onecycle":
        net, summary = _train_onecycle(
            estimator,
            theta,
            x,
            batch_size=batch_size,
            learning_rate=learning_rate,
            epochs=max_epochs,
            validation_fraction=validation_fraction,
            seed=seed,
            validation_groups=validation_groups,
        )
        from sbi.inference.posteriors import DirectPosterior

        posterior = DirectPosterior(posterior_estimator=net, prior=prior)
    elif schedule == "constant":
        if validation_groups is not None:
            raise ValueError("validation_groups needs schedule 'onecycle' (sbi's trainer draws its own split)")
        inference = NPE(
            prior=prior,
            density_estimator=estimator,
            show_progress_bars=False,
            tracker=NullTracker() if tracker is None else tracker,
        )
        inference.append_simulations(theta, x)
        net = inference.train(
            training_batch_size=batch_size,
            learning_rate=learning_rate,
            max_num_epochs=max_epochs,
            stop_after_epochs=stop_after_epochs,
            validation_fraction=validation_fraction,
        )
        summary = {
            k: [float(v) for v in vals]
            for k, vals in inference.summary.items()
            if k in ("training_loss", "validation_loss")
        }
        summary["epochs"] = int(inference.epoch)
        posterior = inference.build_posterior(net)
    else:
        raise ValueError(f"unknown NPE schedule {schedule!r}; use constant or onecycle")
    summary["schedule"] = schedule
    summary["training_time_s"] = round(time.perf_counter() - start, 2)
    log.info(
        "NPE (%s, %d features, %d transforms, %s) trained for %d epochs in %.1f s, best validation loss %.4f",
        model,
        hidden_features,
        num_transforms,
        schedule,
        summary["epochs"],
        summary["training_time_s"],
        min(summary.get("validation_loss", [np.nan])),
    )
    return posterior, summary


def _train_onecycle(
    build,
    theta,
    x,
    *,
    batch_size: int,
    learning_rate: float,
    epochs: int,
    validation_fraction: float,
    seed: int,
    clip_max_norm: float = 5.0,
    log_every: int = 10,
    validation_groups=None,
):
    """Adam + OneCycle over ``epochs`` on sbi's NPE loss (-log q(theta | x)); sbi's validation split and
    gradient clipping. Returns (the network at its best validation epoch, summary)."""
    from copy import deepcopy

    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(len(theta), generator=gen)
    if validation_groups is None:
        n_val = int(validation_fraction * len(theta))
        if n_val < 1:
            raise ValueError(f"validation_fraction {validation_fraction} leaves no validation sample of {len(theta)}")
        val, train = perm[:n_val], perm[n_val:]
    else:
        groups = np.unique(np.asarray(validation_groups), return_inverse=True)[1]
        n_groups = int(groups.max()) + 1
        chosen = torch.randperm(n_groups, generator=gen)[: max(1, int(validation_fraction * n_groups))].numpy()
        is_val = np.isin(groups, chosen)
        if is_val.all():
            raise ValueError(f"validation_fraction {validation_fraction} of {n_groups} groups leaves no training group")
        val, train = torch.as_tensor(np.flatnonzero(is_val)), torch.as_tensor(np.flatnonzero(~is_val))
        n_val = len(val)
    net = build(theta[train], x[train])  # z-scoring from the training part, as sbi does
    opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
    steps = -(-len(train) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=learning_rate, total_steps=epochs * steps)
    summary = {"training_loss": [], "validation_loss": []}
    best, best_state = np.inf, None
    for epoch in range(epochs):
        net.train()
        order = train[torch.randperm(len(train), generator=gen)]
        total = 0.0
        for k in range(steps):
            b = order[k * batch_size : (k + 1) * batch_size]
            loss = net.loss(theta[b], condition=x[b]).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip_max_norm)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        net.eval()
        with torch.no_grad():
            v = float(
                torch.cat(
                    [net.loss(theta[val[i : i + 4096]], condition=x[val[i : i + 4096]]) for i in range(0, n_val, 4096)]
                ).mean()
            )
        summary["training_loss"].append(total / len(train))
        summary["validation_loss"].append(v)
        if v < best:
            best, best_state = v, deepcopy(net.state_dict())
        if epoch % log_every == 0 or epoch == epochs - 1:
            log.info(
                "epoch %d/%d: training loss %.4f, validation loss %.4f (best %.4f)",
                epoch + 1,
                epochs,
                summary["training_loss"][-1],
                v,
                best,
            )
    net.load_state_dict(best_state)
    net.zero_grad(set_to_none=True)
    summary["epochs"] = epochs
    summary["best_epoch"] = int(np.argmin(summary["validation_loss"])) + 1
    summary["n_validation"] = int(n_val)
    summary["validation_split"] = "whole groups" if validation_groups is not None else "random simulations"
    return net, summary


def sample(
    posterior,
    x,
    n_samples: int,
    seed: int = 0,
    batch: int = 500,
    max_rounds: int = 50,
    warn_below: float = 0.1,
    support=None,
    on_empty: str = "raise",
) -> np.ndarray:
    """Posterior samples (n_samples, N, D) for observations x (N, n_x), float64: the flow's samples inside the
    prior box (rejection, as sbi's DirectPosterior does) and, where given, inside ``support`` (a callable: torch
    samples (..., D) -> bool mask (...)), drawn in one batched call per ``batch`` observations and
    round, until every observation has ``n_samples``. A warning gives the acceptance when it is below
    ``warn_below``; an observation still short after ``max_rounds`` rounds (its flow almost entirely outside the
    prior: an observation unlike the training set) gets its accepted samples redrawn with replacement, with a
    warning. One without any accepted sample is an error (``on_empty="raise"``) or gets NaN samples
    (``on_empty="nan"``, for an evaluation that counts such observations instead of stopping)."""
    if on_empty not in ("raise", "nan"):
        raise ValueError(f"on_empty must be 'raise' or 'nan', not {on_empty!r}")
    torch.manual_seed(int(seed))
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    est = posterior.posterior_estimator
    low, high = posterior.prior.base_dist.low, posterior.prior.base_dist.high
    out, drawn, accepted = [], 0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i : i + batch]
            res = torch.empty((n_samples, len(xb), low.numel()))
            count = torch.zeros(len(xb), dtype=torch.long)
            for _ in range(max_rounds):
                todo = torch.nonzero(count < n_samples).flatten()
                if len(todo) == 0:
                    break
                need = n_samples - count[todo]
                rate = max(accepted / drawn, 1e-3) if drawn else 1.0
                m = int(min(max(need.max().item() / rate * 1.2, 16), 20 * n_samples))
                s = est.sample((m,), condition=xb[todo])  # (m, T, D)
                inside = ((s >= low) & (s <= high)).all(-1)  # (m, T)
                if support is not None:
                    inside &= support(s)
                drawn, accepted = drawn + inside.numel(), accepted + int(inside.sum())
                rank = torch.cumsum(inside.long(), 0)  # 1-based rank of each accepted sample
                keep = inside & (rank <= need[None, :])
                si, ti = torch.nonzero(keep, as_tuple=True)
                res[count[todo][ti] + rank[si, ti] - 1, todo[ti]] = s[si, ti]
                count[todo] += keep.sum(0)
            short = torch.nonzero(count < n_samples).flatten()
            empty = []
            for k in short.tolist():
                c = int(count[k])
                if c == 0 and on_empty == "nan":
                    res[:, k] = float("nan")
                    empty.append(i + k)
                    continue
                if c == 0:
                    raise RuntimeError(
                        f"no posterior sample inside the prior box (and support) for observation {i + k} after "
                        f"{max_rounds} rounds: is it like the training set?"
                    )
                pick = torch.randint(c, (n_samples - c,), generator=gen)
                res[c:, k] = res[pick, k]
            if len(short) > len(empty):
                log.warning(
                    "%d observations had fewer than %d in-prior samples after %d rounds: their accepted "
                    "samples were redrawn with replacement",
                    len(short) - len(empty),
                    n_samples,
                    max_rounds,
                )
            if empty:
                log.warning(
                    "no posterior sample inside the prior box (and support) after %d rounds for observations %s: "
                    "their samples are NaN",
                    max_rounds,
                    empty,
                )
            out.append(res)
    if drawn and accepted / drawn < warn_below:
        log.warning("only %.1f %% of the flow's samples fell inside the prior box (rejected)", 100 * accepted / drawn)
    if not out:
        return np.empty((n_samples, 0, low.numel()))
    return torch.cat(out, dim=1).numpy().astype(np.float64)


def log_prob(posterior, theta, x, batch: int = 256) -> np.ndarray:
    """Flow log density log q(theta[s, i] | x[i]) for theta (S, N, D): (S, N), without the leakage correction."""
    theta = torch.as_tensor(np.asarray(theta), dtype=torch.float32)
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    est = posterior.posterior_estimator
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            out.append(est.log_prob(theta[:, i : i + batch], condition=x[i : i + batch]))
    return torch.cat(out, dim=1).double().numpy()


def log_prob_grid(posterior, x, grid, star_batch: int = 64) -> np.ndarray:
    """Unnormalised NPE log density at grid points (G, D) for each observation: (N, G)."""
    g = torch.as_tensor(np.asarray(grid), dtype=torch.float32)
    theta = g[:, None, :].expand(len(g), len(x), g.shape[1])  # a view: every observation on the same grid
    return log_prob(posterior, theta, x, batch=star_batch).T


def save_posterior(posterior, path, summary=None, **metadata) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save({"posterior": posterior, "summary": summary or {}, **metadata}, tmp)
    tmp.replace(path)
    return path


def load_posterior(path):
    """(posterior, summary) of a file written by :func:`save_posterior` (the chem graph's contract)."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    return blob["posterior"], blob["summary"]
