# The SSP-library systematic -> results/ssp/fastar_vs_miles.*, results/evaluation/{family}/cross_library.*: FASTAR,
# which the models are trained on, against real MILES SSPs, and the FASTAR-trained posterior on spectra synthesised
# from MILES. Its own target, `snakemake --cores 2 ssp_systematic`; the first run downloads ppxf 8.1.0's source
# distribution (25 MB, PyPI) for its 150 E-MILES SSPs unless ssp_systematic.miles.directory names a folder of yours.


rule miles_models_fetch:
    """ppxf 8.1.0's E-MILES SSPs (Padova+00, unimodal 1.30, base [alpha/Fe]) from its sdist on PyPI, unpacked."""
    output:
        models=directory(MILES_FETCH_DIRECTORY),
    log:
        "logs/miles_models_fetch.log",
    benchmark:
        bench("miles_models_fetch")
    conda:
        "../../envs/galaxy-sbi.yaml"
    resources:
        mem_mb=1000,
        runtime=20,
    script:
        "../../scripts/miles_models_fetch.py"


rule ssp_compare_miles:
    """MILES SSPs read; FASTAR at their ages, [M/H] and IMF; residuals over wavelength, luminosities, Lick indices."""
    input:
        miles=config["ssp_systematic"]["miles"]["directory"],
    output:
        miles="results/ssp/miles_library.nc",
        comparison="results/ssp/fastar_vs_miles.nc",
        summary="results/ssp/fastar_vs_miles.json",
        png=report(
            "results/ssp/fastar_vs_miles.png",
            caption="../report/ssp_systematic.rst",
            category="1. SSP library",
        ),
    log:
        "logs/ssp_compare_miles.log",
    benchmark:
        bench("ssp_compare_miles")
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=30,
    params:
        miles=config["ssp_systematic"]["miles"],
    script:
        "../../scripts/ssp_compare_miles.py"


rule cross_library:
    """The family's FASTAR-trained encoder and posterior on its test SFHs synthesised from MILES, beside FASTAR."""
    input:
        posterior=configured_posterior,
        encoder="results/encoder/{family}/encoder.ckpt",
        sfh="results/sfh/{family}.nc",
        grid="results/ssp/ssp_grid.nc",
        miles=rules.ssp_compare_miles.output.miles,
    output:
        summary="results/evaluation/{family}/cross_library.json",
        png=report(
            "results/evaluation/{family}/cross_library.png",
            caption="../report/ssp_systematic.rst",
            category="1. SSP library",
        ),
    log:
        "logs/cross_library/{family}.log",
    benchmark:
        bench("cross_library/{family}")
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spectra=config["spectra"],
        snr=EVALUATION["snr"],
        n_samples=config["ssp_systematic"]["n_samples"],
        seed=EVALUATION["seed"],
        # a told NPE's noisy test spectra carry the instrument's broadening (as its training copies do)
        instrument=EVALUATION["degraded"],
    script:
        "../../scripts/cross_library.py"


rule ssp_systematic:
    """Target: FASTAR against MILES, and every configured family's cross-library test."""
    input:
        rules.ssp_compare_miles.output,
        expand(
            rules.cross_library.output.summary,
            family=config["ssp_systematic"]["families"],
        ),
