"""Train one NPE (joint: six parameters; global: alpha_IMF and log10_N_Ia) on noisy emulator draws."""

import logging

from galaxy_sbi.chem import npe
from galaxy_sbi.chem.datasets import load_yields
from galaxy_sbi.chem.emulator import load_emulator
from galaxy_sbi.chem.priors import N_GLOBAL, Priors
from galaxy_sbi.seeding import derived_rng
from galaxy_sbi.workflow import run_script


def main(smk):
    log = logging.getLogger("chem_npe")
    p = smk.params
    kind = smk.wildcards.kind
    priors = Priors.from_config(p.priors)
    model = load_emulator(smk.input.emulator) if hasattr(smk.input, "emulator") else None
    rng = derived_rng(p.seed, "chem_npe", kind)
    cfg = p.npe
    source = "emulator" if kind == "joint" else cfg["global_source"]
    n = cfg["n_simulations"] if kind == "joint" else cfg["n_simulations_global"]
    yields = load_yields(p.yields) if source == "simulator" else None
    theta, x, info = npe.training_set(
        model,
        priors,
        n,
        cfg["noise_dex"],
        rng,
        kind=kind,
        source=source,
        yields=yields,
        joint_prior=cfg.get("joint_prior", "population"),
    )
    prior = priors.box() if kind == "joint" else priors.box(slice(0, N_GLOBAL))
    log.info("training the %s NPE on %d %s draws (%s)", kind, len(theta), source, cfg[kind])
    flow = dict(cfg[kind])
    batch_size, lr = flow.pop("batch_size", cfg["batch_size"]), flow.pop("learning_rate", cfg["learning_rate"])
    max_epochs = flow.pop("max_epochs", cfg["max_epochs"])
    posterior, summary = npe.train_npe(
        theta,
        x,
        prior,
        batch_size=batch_size,
        learning_rate=lr,
        max_epochs=max_epochs,
        stop_after_epochs=cfg["stop_after_epochs"],
        seed=p.seed,
        **flow,
    )
    summary["source"], summary["n_simulations"] = source, len(theta)
    if kind == "joint":
        summary["training_prior"] = cfg["joint_prior"]  # the multi-star Gaussian product's prior correction reads it
    npe.save_posterior(posterior, smk.output.posterior, summary, acceptance=info["acceptance"].to_dict())


run_script(main, snakemake)  # noqa: F821
