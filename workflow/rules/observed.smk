# Stage 7: observed galaxies (seed section 8) -> results/observed/{galaxy}/. Each galaxy's spectrum is prepared like
# the training spectra, fitted by pPXF, and inferred by the configured family's posterior matched to it. Its own
# target, `snakemake --cores 2 observed` (~10 job-minutes for the two default galaxies: outside the default run's
# 30-minute budget).


wildcard_constraints:
    galaxy="|".join(OBSERVED_GALAXIES) or "no-galaxy",


rule observed_prepare:
    """Read and check one galaxy's file, put it on the model grid, measure its sigma with pPXF."""
    input:
        spectrum=observed_file,
        grid="results/ssp/ssp_grid.nc",
    output:
        prepared="results/observed/{galaxy}/prepared.nc",
    log:
        "logs/observed_prepare/{galaxy}.log",
    benchmark:
        bench("observed_prepare/{galaxy}")
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        entry=lambda w: config["observed"]["galaxies"][w.galaxy],
        preparation=config["observed"]["preparation"],
        # the sigma fit's settings (not the bootstrap's)
        ppxf=pick(config["observed"]["ppxf"], "mdegree", "age_step"),
    script:
        "../../scripts/observed_prepare.py"


rule observed_ppxf:
    """pPXF's regularised population fit of the prepared galaxy (the baselines' recipe, observed-spectrum options)."""
    input:
        prepared=rules.observed_prepare.output.prepared,
        grid="results/ssp/ssp_grid.nc",
        sfh=f"results/sfh/{OBSERVED_FAMILY}.nc",
    output:
        fit="results/observed/{galaxy}/ppxf.npz",
    log:
        "logs/observed_ppxf/{galaxy}.log",
    benchmark:
        bench("observed_ppxf/{galaxy}")
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        ppxf=config["observed"]["ppxf"],
        seed=config["seed"],
    script:
        "../../scripts/observed_ppxf.py"


rule observed_posterior:
    """The family's NPE retrained on its spectra degraded like the galaxy, checked on degraded test spectra,
    applied to the galaxy, with the latent OOD tests and the reconstruction chi^2."""
    input:
        prepared=rules.observed_prepare.output.prepared,
        cubes=spectra_files(OBSERVED_FAMILY_WILDCARDS),
        encoder=f"results/encoder/{OBSERVED_FAMILY}/encoder.ckpt",
        grid="results/ssp/ssp_grid.nc",
        sfh=f"results/sfh/{OBSERVED_FAMILY}.nc",
    output:
        posterior="results/observed/{galaxy}/posterior.pt",
        samples="results/observed/{galaxy}/samples.nc",
        checks="results/observed/{galaxy}/checks.json",
    log:
        "logs/observed_posterior/{galaxy}.log",
    benchmark:
        bench("observed_posterior/{galaxy}")
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=family_memory_mb(OBSERVED_FAMILY_WILDCARDS),
        runtime=60,
    params:
        npe=observed_npe_settings,
        observed=pick(config["observed"], "model", "ood"),
        reconstruction_ends=EVALUATION["reconstruction"]["ends"],
        seed=config["seed"],
    script:
        "../../scripts/observed_posterior.py"


rule observed_summary:
    """The galaxy's table, corner plot, mass assembly, reconstruction and summary.json."""
    input:
        **observed_systematic_input(),
        prepared=rules.observed_prepare.output.prepared,
        ppxf=rules.observed_ppxf.output.fit,
        samples=rules.observed_posterior.output.samples,
        checks=rules.observed_posterior.output.checks,
        grid="results/ssp/ssp_grid.nc",
        sfh=f"results/sfh/{OBSERVED_FAMILY}.nc",
        # the SSP-library systematic (rule cross_library), unless observed.ssp_systematic is false
    output:
        summary="results/observed/{galaxy}/summary.json",
        csv="results/observed/{galaxy}/posterior_table.csv",
        md="results/observed/{galaxy}/posterior_table.md",
        corner=report(
            "results/observed/{galaxy}/corner.png",
            caption="../report/observed.rst",
            category="6. Observed galaxies",
            subcategory="{galaxy}",
        ),
        mass_assembly=report(
            "results/observed/{galaxy}/mass_assembly.png",
            caption="../report/observed.rst",
            category="6. Observed galaxies",
            subcategory="{galaxy}",
        ),
        calibration=report(
            "results/observed/{galaxy}/calibration.png",
            caption="../report/observed.rst",
            category="6. Observed galaxies",
            subcategory="{galaxy}",
        ),
        reconstruction=report(
            "results/observed/{galaxy}/reconstruction.png",
            caption="../report/observed.rst",
            category="6. Observed galaxies",
            subcategory="{galaxy}",
        ),
    log:
        "logs/observed_summary/{galaxy}.log",
    benchmark:
        bench("observed_summary/{galaxy}")
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        reconstruction_ends=EVALUATION["reconstruction"]["ends"],
    script:
        "../../scripts/observed_summary.py"


rule observed:
    """Target: every configured galaxy."""
    input:
        expand(rules.observed_summary.output.summary, galaxy=OBSERVED_GALAXIES),
