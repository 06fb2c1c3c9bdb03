"""One multi-star data set: observables of the stars of one galaxy (npz)."""

import logging
import tempfile

import numpy as np

from galaxy_sbi.chem import datasets as D
from galaxy_sbi.chem.priors import Priors
from galaxy_sbi.seeding import derived_rng
from galaxy_sbi.workflow import run_script


def main(smk):
    log = logging.getLogger("chem_dataset")
    p = smk.params.dataset  # this data set's settings only (workflow/rules/common.smk: chem_dataset_settings)
    name = smk.wildcards.dataset
    if name == "tng":
        data = D.load_tng_mock(p["tng_mock"])
        data["obs"], data["true"] = data["obs"][: p["n_stars"]], data["true"][: p["n_stars"]]
        truth = np.array([-2.3, -2.89])  # the study's values for the TNG galaxy
        note = f"IllustrisTNG galaxy from {data['source']} (its own 0.05 dex noise)"
    else:
        priors = Priors.from_config(p["priors"])
        truth = np.asarray(p["global_values"], float)
        rng = derived_rng(p["seed"], "chem_dataset", name)
        if name == "vice":
            v = p["vice"]
            with tempfile.TemporaryDirectory(prefix="vice_") as workdir:
                data = D.vice_galaxy(
                    truth, priors, v["n_stars"], v["n_runs"], p["noise_dex"], rng, workdir=workdir, preset=v["preset"]
                )
            note = (
                f"vice.singlezone, {v['n_runs']} runs, {v['preset']} yields (see galaxy_sbi.chem.datasets.vice_galaxy)"
            )
        else:
            yields = D.load_yields(p["yields"])
            data = D.simulated_galaxy(yields, priors, truth, p["n_stars"], p["noise_dex"], rng)
            note = f"our simulator, yields {yields.name}: {yields.description}"
    log.info("%s: %d stars; %s", name, len(data["obs"]), note)
    np.savez(
        smk.output.data,
        obs=data["obs"],
        true=data["true"],
        truth=truth,
        labels=np.array(D.OBS_LABELS),
        note=np.array(note),
    )


run_script(main, snakemake)  # noqa: F821
