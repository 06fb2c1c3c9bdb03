"""Rule chem_npe_evaluate: the joint NPE on the simulator's validation and population sets: APE, SBC, TARP."""

import json

from galaxy_sbi.chem import PARAMETER_NAMES, npe
from galaxy_sbi.chem.evaluation import evaluation_sets, joint_npe_metrics
from galaxy_sbi.plots import plot_sbc, plot_tarp
from galaxy_sbi.seeding import derived_rng
from galaxy_sbi.workflow import run_script


def main(smk):
    p, cfg = smk.params, smk.params.npe
    posterior, summary = npe.load_posterior(smk.input.posterior)
    rng = derived_rng(p.seed, "chem_npe_evaluate")
    sets = evaluation_sets(smk.input.simulations, cfg["n_evaluate"], rng)
    metrics, cal = joint_npe_metrics(
        posterior,
        summary,
        *sets["validation"],
        *sets["population"],
        cfg["noise_dex"],
        cfg["n_posterior_samples"],
        p.seed,
        rng,
    )
    with open(smk.output.metrics, "w") as f:
        json.dump(metrics, f, indent=2, default=float)
    n = len(cal["ranks"])
    title = f"SBC ranks of the joint NPE on {n} {cal['sets']} sets (grey: 99 % band of a uniform histogram)"
    plot_sbc(cal["ranks"], cfg["n_posterior_samples"], list(PARAMETER_NAMES), smk.output.sbc, title=title)
    tarp = cal["tarp"]
    plot_tarp(tarp["ecp"], tarp["alpha"], tarp["atc"], smk.output.tarp, title="TARP, joint NPE", label="NPE")


run_script(main, snakemake)  # noqa: F821
