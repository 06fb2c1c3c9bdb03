"""Rule observed_posterior: the family's NPE retrained on its spectra degraded like this galaxy, checked on degraded
test spectra, applied to the galaxy; the latent OOD tests and the reconstruction chi^2."""

from galaxy_sbi.spectra.datasets import load_family
from galaxy_sbi.spectra.encoder import load_encoder
from galaxy_sbi.spectra.observed import load_prepared, matched_posterior, samples_dataset, write_json
from galaxy_sbi.spectra.reconstruction import Reconstructor
from galaxy_sbi.workflow import run_script


def main(smk):
    p = smk.params
    prepared, attrs = load_prepared(smk.input.prepared)
    data = load_family(list(smk.input.cubes))
    rec = Reconstructor.from_files(smk.input.grid, smk.input.sfh, ends=p.reconstruction_ends)
    out = matched_posterior(prepared, data, load_encoder(smk.input.encoder), rec, p.npe, p.observed, p.seed)
    out["posterior"].save(smk.output.posterior)
    samples_dataset(out["samples"], out["posterior"].names, {"galaxy": smk.wildcards.galaxy}).to_netcdf(
        smk.output.samples
    )
    training = out["posterior"].training_summary()
    write_json({"calibration": out["calibration"], "checks": out["checks"], "training": training}, smk.output.checks)


run_script(main, snakemake)  # noqa: F821
