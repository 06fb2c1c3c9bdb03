"""Train the emulator on the simulator's training set; validation APE, loss curve and APE plot."""
import json
import logging

import numpy as np
import torch
import xarray as xr

from galaxy_sbi.chem import emulator as emu
from galaxy_sbi.chem.priors import Priors
from galaxy_sbi.plots import plot_chem_emulator_ape, plot_chem_emulator_loss
from galaxy_sbi.workflow import run_script


def main(smk):
    log = logging.getLogger("chem_emulator")
    torch.set_num_threads(smk.threads)
    p = smk.params
    priors = Priors.from_config(p.priors)
    with xr.open_dataset(smk.input.simulations) as ds:
        train, val = ds.split.values == "train", ds.split.values == "validation"
        theta, x = ds.theta.values, ds.abundance.values
        labels = [str(v) for v in ds.observable.values]
    e = p.emulator
    model = emu.train_emulator(theta[train], x[train], theta[val], x[val], theta_low=priors.low,
                               theta_high=priors.high, hidden=e["hidden"], batch_size=e["batch_size"],
                               learning_rate=e["learning_rate"], epochs=e["epochs"], seed=p.seed)
    emu.save_emulator(model, smk.output.model)
    ape = emu.absolute_percentage_error(emu.predict(model, theta[val]), x[val])
    q = np.percentile(ape, [16, 50, 84])
    per = {lab: float(np.median(ape[:, i])) for i, lab in enumerate(labels)}
    log.info("emulator APE on %d validation sets: median %.2f %% (16 %%: %.2f, 84 %%: %.2f)", val.sum(), *q[[1, 0, 2]])
    metrics = {"n_train": int(train.sum()), "n_validation": int(val.sum()),
               "ape_percent": {"median": q[1], "p16": q[0], "p84": q[2]}, "ape_median_per_observable": per,
               "target_median_percent": 1.6, "history": model.history}
    with open(smk.output.metrics, "w") as f:
        json.dump(metrics, f, indent=2)
    plot_chem_emulator_loss(model.history, smk.output.loss)
    plot_chem_emulator_ape(ape, labels, smk.output.ape)


run_script(main, snakemake)  # noqa: F821
