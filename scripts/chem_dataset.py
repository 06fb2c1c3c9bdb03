"""One multi-star data set: observables of the stars of one galaxy (npz)."""
import logging

import numpy as np

from galaxy_sbi.chem import datasets as D
from galaxy_sbi.chem.priors import Priors
from galaxy_sbi.workflow import run_script

_INDEX = {"simulator": 0, "simulator_alt": 1, "tng": 2, "vice": 3}


def main(smk):
    log = logging.getLogger("chem_dataset")
    p = smk.params
    name = smk.wildcards.dataset
    priors = Priors.from_config(p.priors)
    ms = p.multistar
    truth = np.asarray(ms["global_values"], float)
    rng = np.random.default_rng(np.random.SeedSequence([p.seed, 7004, _INDEX[name]]))
    if name in ("simulator", "simulator_alt"):
        yields = D.load_yields(p.yields if name == "simulator" else p.alternative_yields)
        data = D.simulated_galaxy(yields, priors, truth, ms["n_stars"], p.noise_dex, rng)
        note = f"our simulator, yields {yields.name}: {yields.description}"
    elif name == "tng":
        data = D.load_tng_mock(ms["tng_mock"])
        data["obs"], data["true"] = data["obs"][: ms["n_stars"]], data["true"][: ms["n_stars"]]
        truth = np.array([-2.3, -2.89])  # the study's values for the TNG galaxy
        note = f"IllustrisTNG galaxy from {data['source']} (its own 0.05 dex noise)"
    else:
        v = ms["vice"]
        data = D.vice_galaxy(truth, priors, v["n_stars"], v["n_runs"], p.noise_dex, rng,
                             workdir=smk.output.data + ".vice", preset=v["preset"])
        note = f"vice.singlezone, {v['n_runs']} runs, {v['preset']} yields (see galaxy_sbi.chem.datasets.vice_galaxy)"
    log.info("%s: %d stars; %s", name, len(data["obs"]), note)
    np.savez(smk.output.data, obs=data["obs"], true=data["true"], truth=truth, labels=np.array(D.OBS_LABELS),
             note=np.array(note))
    import shutil

    shutil.rmtree(smk.output.data + ".vice", ignore_errors=True)


run_script(main, snakemake)  # noqa: F821
