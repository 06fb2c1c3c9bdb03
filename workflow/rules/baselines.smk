# Stage 6: ANPE against emcee and pPXF on the same test spectra (seed 6) -> results/baselines/{size}/.
# `quick` (a few spectra) is part of the default run; `snakemake --cores 2 baselines_full` runs the full comparison.


wildcard_constraints:
    size="quick|full",


rule baselines_fit:
    """ANPE, emcee (parametric family) and pPXF on the picked test spectra of one family, at every setting
    (S/N, sigma)."""
    input:
        cubes=spectra_files,
        grid="results/ssp/ssp_grid.nc",
        # emcee's forward model: the native models the cubes' continuous [M/H] is interpolated between
        library=rules.ssp_library.output.library,
        encoder="results/encoder/{family}/encoder.ckpt",
        encoder_metrics="results/encoder/{family}/metrics.json",
        posterior=configured_posterior,
    output:
        fits="results/baselines/{size}/{family}.npz",
    log:
        "logs/baselines_fit/{size}_{family}.log",
    benchmark:
        bench("baselines_fit/{size}_{family}")
    conda:
        "../../envs/galaxy-sbi.yaml"
    # one thread: every method is timed on one core
    threads: 1
    resources:
        mem_mb=family_memory_mb,
        runtime=600,
    params:
        baselines=baselines_settings,
        # the spectra, emcee's model and pPXF's templates are broadened to this instrument (as the told NPE's
        # training copies are)
        instrument=config["evaluation"]["degraded"],
        # emcee's model and prior: the parametric family only
        sfh_parametric=lambda w: (
            config["sfh"]["parametric"] if w.family == "parametric" else None
        ),
    script:
        "../../scripts/baselines_fit.py"


rule baselines_table:
    """The table, the speed-ups and the plots of one comparison."""
    input:
        fits=expand("results/baselines/{{size}}/{family}.npz", family=SFH_FAMILIES),
    output:
        csv="results/baselines/{size}/table.csv",
        md="results/baselines/{size}/table.md",
        summary="results/baselines/{size}/summary.json",
        time_vs_error=report(
            "results/baselines/{size}/time_vs_error.png",
            caption="../report/baselines.rst",
            category="5. Baselines",
        ),
        example=report(
            "results/baselines/{size}/example_posteriors.png",
            caption="../report/baselines.rst",
            category="5. Baselines",
        ),
    log:
        "logs/baselines_table/{size}.log",
    benchmark:
        bench("baselines_table/{size}")
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/baselines_table.py"


rule baselines:
    """Target: the quick comparison (part of the default run)."""
    input:
        rules.baselines_table.output.md.format(size="quick"),


rule baselines_full:
    """Target: the full comparison (baselines.sizes.full spectra per family and setting)."""
    input:
        rules.baselines_table.output.md.format(size="full"),
