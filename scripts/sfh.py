"""Rule sfh: draw or grid one SFH family and compute its percentile labels."""

from galaxy_sbi.io import provenance_attrs, write_netcdf
from galaxy_sbi.spectra.sfh import make_family
from galaxy_sbi.workflow import run_script


def main(smk):
    cfg = smk.params.sfh
    family = smk.wildcards.family
    sfh_cfg = {k: v for k, v in cfg.items() if k not in ("seed", "cells")}
    ds = make_family(family, sfh_cfg, cfg.get("seed", 0), processes=smk.threads, cells=cfg.get("cells"))
    ds.attrs.update(provenance_attrs(cfg, stage=f"sfh {family}"))
    write_netcdf(ds, smk.output.sfh, chunk_sizes={"sfh": 1024})


run_script(main, snakemake)  # noqa: F821
