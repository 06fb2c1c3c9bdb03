"""Real CHEMPY (the study's ChempyMulti fork) on random parameter sets: the regression target of the simulator.

Runs in its own environment, not galaxy-sbi's (CHEMPY needs numpy < 1.24: ``np.int`` / ``np.float``), see
README.md here. Writes an npz in the layout of ``../shared/data/chem/chempy_reference_tng.npz``: ``params``
(N x 6: alpha_IMF, log10_N_Ia, log10_SFE, log10_SFR_scale, outflow_fraction, birth_time_Gyr),
``abundances`` (N x 9 in ``elements`` order, NaN where CHEMPY rejected the set), ``prior``, ``description``;
with ``--yields alternative`` also CHEMPY's own processed tables (``tables_<channel>|<Z>|<column>``), which
the port in galaxy_sbi.chem.chempy_tables must equal.

    python run_chempy.py --checkout /path/to/ChempyMulti --yields alternative --out reference.npz
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

# The study's priors (config/config.yaml chem.priors): Gaussian population prior, birth time uniform in 1-13.8 Gyr
MEAN = np.array([-2.3, -2.89, -0.3, 0.55, 0.5])
SIGMA = np.array([0.3, 0.3, 0.3, 0.1, 0.1])
ALTERNATIVE = {"yield_table_name_sn2": "Nomoto2013_net", "yield_table_name_agb": "Karakas16_net"}
ALTERNATIVE["yield_table_name_1a"] = "Thielemann"


def parameter_sets(n_gaussian: int, n_uniform: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The study's priors, and a uniform +- 5 sigma box (outflow fraction uniform in 0-1) that CHEMPY often rejects."""
    rng = np.random.default_rng(seed)
    g = np.column_stack([rng.normal(MEAN, SIGMA, (n_gaussian, 5)), rng.uniform(1, 13.8, n_gaussian)])
    u = np.column_stack(
        [rng.uniform(MEAN - 5 * SIGMA, MEAN + 5 * SIGMA, (n_uniform, 5)), rng.uniform(1, 13.8, n_uniform)]
    )
    u[:, 4] = rng.uniform(0, 1, n_uniform)
    return np.concatenate([g, u]), np.array(["gaussian"] * n_gaussian + ["uniform_5sigma"] * n_uniform)


def processed_tables() -> dict:
    """CHEMPY's own net-yield tables of the alternative set, column by column."""
    from Chempy.yields import AGB_feedback, SN1a_feedback, SN2_feedback

    out = {}
    for channel, feedback, method in (
        ("snii", SN2_feedback(), "Nomoto2013_net"),
        ("agb", AGB_feedback(), "Karakas16_net"),
        ("snia", SN1a_feedback(), "Thielemann"),
    ):
        getattr(feedback, method)()
        for z in feedback.metallicities:
            for name in feedback.table[z].dtype.names:
                out[f"tables_{channel}|{z}|{name}"] = np.asarray(feedback.table[z][name], float)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkout", required=True, help="a ChempyMulti checkout (its folder holding Chempy/)")
    ap.add_argument("--yields", choices=["tng", "alternative"], default="alternative")
    ap.add_argument("--n-gaussian", type=int, default=200)
    ap.add_argument("--n-uniform", type=int, default=100)
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sys.path.insert(0, args.checkout)
    from Chempy.cem_function import single_timestep_chempy
    from Chempy.parameter import ModelParameters

    params, prior = parameter_sets(args.n_gaussian, args.n_uniform, args.seed)
    out = np.full((len(params), 9), np.nan)
    names = list(ModelParameters().elements_to_trace)
    start = time.time()
    for i, row in enumerate(params):
        # a fresh ModelParameters per run: single_timestep_chempy leaves end / time_steps / total_mass changed
        # after a rejected run, which silently shifts every later run of a shared instance
        a = ModelParameters()
        if args.yields == "alternative":
            for key, value in ALTERNATIVE.items():
                setattr(a, key, value)
        try:
            result = single_timestep_chempy((np.asarray(row, float), a))
        except AssertionError:  # birth time before t_end - 13 Gyr
            continue
        if isinstance(result, float) and math.isinf(result):  # an element went negative: rejected
            continue
        values, names = result
        out[i] = values
        if i % 50 == 0:
            print(f"{i}/{len(params)} runs, {time.time() - start:.0f} s", flush=True)
    extra = processed_tables() if args.yields == "alternative" else {}
    yields = "the study's alternative yields (" + ", ".join(ALTERNATIVE.values()) + ")" if extra else "TNG yields"
    description = (
        f"Outputs of real CHEMPY (ChempyMulti fork, {yields}, single_timestep_chempy) for random parameter sets "
        f"(tools/chempy_reference/run_chempy.py, seed {args.seed}). params columns: alpha_IMF, log10_N_Ia, "
        "log10_SFE, log10_SFR_scale, outflow_fraction, birth_time_Gyr; abundances in the order of elements "
        "(CHEMPY's [X/Fe], [Fe/H], [H/Fe] = -[Fe/H]); NaN rows = rejected by CHEMPY. prior: gaussian = study priors, "
        "uniform_5sigma = uniform over mu +- 5 sigma (outflow fraction U(0,1)); birth time U(1, 13.8) Gyr."
    )
    np.savez_compressed(
        args.out,
        params=params,
        abundances=out,
        elements=np.array([str(n) for n in names]),
        prior=prior,
        description=np.array(description),
        seconds_per_run=np.array((time.time() - start) / len(params)),
        **extra,
    )
    print(f"wrote {args.out}: {np.isfinite(out).all(1).sum()} of {len(params)} accepted")


if __name__ == "__main__":
    main()
