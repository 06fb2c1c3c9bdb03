"""Rule chem_emulator: train the emulator on the simulator's training set; validation APE, loss curve, APE plot."""

import json

import xarray as xr

from galaxy_sbi.chem import emulator as emu
from galaxy_sbi.chem.evaluation import emulator_metrics
from galaxy_sbi.chem.priors import Priors
from galaxy_sbi.plots import plot_chem_emulator_ape, plot_chem_emulator_loss
from galaxy_sbi.workflow import run_script


def main(smk):
    p, e = smk.params, smk.params.emulator
    priors = Priors.from_config(p.priors)
    with xr.open_dataset(smk.input.simulations) as ds:
        split, theta, x = ds.split.values, ds.theta.values, ds.abundance.values
        labels = [str(v) for v in ds.observable.values]
    train, val = split == "train", split == "validation"
    model = emu.train_emulator(
        theta[train],
        x[train],
        theta[val],
        x[val],
        theta_low=priors.low,
        theta_high=priors.high,
        seed=p.seed,
        **e,  # hidden, batch_size, learning_rate, epochs, scheduler, activation
    )
    emu.save_emulator(model, smk.output.model)
    metrics, ape = emulator_metrics(model, theta, x, split, labels)
    with open(smk.output.metrics, "w") as f:
        json.dump(metrics, f, indent=2)
    plot_chem_emulator_loss(model.history, smk.output.loss)
    plot_chem_emulator_ape(ape, labels, smk.output.ape)


run_script(main, snakemake)  # noqa: F821
