# Stage 1: SSP library -> results/ssp/


rule ssp_library:
    """Native SSP cube (alpha?, metallicity, age, wavelength) from FASTAR, milespy or MILES FITS files."""
    input:
        ssp_library_inputs(),
    output:
        library="results/ssp/ssp_library.nc",
    log:
        "logs/ssp_library.log",
    benchmark:
        bench("ssp_library")
    priority: CHAIN_PRIORITY_TO_ENCODERS
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        ssp=ssp_library_settings(),
    script:
        "../../scripts/ssp_library.py"


rule ssp_interpolate:
    """The cube on the configured [M/H] / [alpha/Fe] grid that the forward model uses."""
    input:
        library=rules.ssp_library.output.library,
    output:
        grid="results/ssp/ssp_grid.nc",
    log:
        "logs/ssp_interpolate.log",
    benchmark:
        bench("ssp_interpolate")
    priority: CHAIN_PRIORITY_TO_ENCODERS
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 2  # the chain up to the encoders: one job at a time (common.smk)
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        grid=config["ssp"]["interpolate"],
    script:
        "../../scripts/ssp_interpolate.py"


rule ssp_overview_plot:
    """Example SSPs of several ages and metallicities."""
    input:
        library=rules.ssp_library.output.library,
    output:
        png=report(
            "results/ssp/ssp_overview.png",
            caption="../report/ssp_overview.rst",
            category="1. SSP library",
        ),
    log:
        "logs/ssp_overview_plot.log",
    benchmark:
        bench("ssp_overview_plot")
    conda:
        "../../envs/galaxy-sbi.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        plot=config["ssp"]["plot"],
    script:
        "../../scripts/ssp_overview_plot.py"


rule ssp:
    """Target: the whole SSP stage."""
    input:
        rules.ssp_library.output,
        rules.ssp_interpolate.output,
        rules.ssp_overview_plot.output,
