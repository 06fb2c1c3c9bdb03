# Stage 2: SFHs -> results/sfh/, synthetic spectra cubes -> results/spectra/ (one job per family x cell)
from galaxy_sbi.spectra.synth import CELL_PATTERN


wildcard_constraints:
    family="parametric|nonparametric",
    cell=CELL_PATTERN,


rule sfh:
    """One SFH family: SFRs, cumulative mass fractions and the percentile labels t10...t90."""
    output:
        sfh="results/sfh/{family}.nc",
    log:
        "logs/sfh/{family}.log",
    benchmark:
        bench("sfh/{family}")
    priority: CHAIN_PRIORITY_TO_ENCODERS
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        sfh=sfh_settings,
    script:
        "../../scripts/sfh.py"


rule spectra_cell:
    """Labelled spectra of one SFH family in one ([M/H], [alpha/Fe]) cell: flux (sample, wavelength) + split."""
    input:
        sfh=rules.sfh.output.sfh,
        grid=rules.ssp_interpolate.output.grid,
        # the native models: spectra at continuous [M/H] (spectra.metallicity_sampling)
        library=rules.ssp_library.output.library,
    output:
        cube="results/spectra/{family}/{cell}.nc",
    log:
        "logs/spectra_cell/{family}_{cell}.log",
    benchmark:
        bench("spectra_cell/{family}_{cell}")
    priority: CHAIN_PRIORITY_TO_ENCODERS
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 2  # the chain up to the encoders: one job at a time (common.smk)
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        spectra=without_runtime("spectra"),
        seed=config["seed"],
    script:
        "../../scripts/spectra_cell.py"


rule error_spectra:
    """The wavelength dependence of real noise: the listed observed error spectra on the model grid, median 1."""
    input:
        grid="results/ssp/ssp_grid.nc",
        sources=error_spectra_files,
    output:
        shapes=ERROR_SPECTRA,
        png=report(
            "results/spectra/error_spectra.png",
            caption="../report/error_spectra.rst",
            category="2. SFHs and synthetic spectra",
        ),
    log:
        "logs/error_spectra.log",
    benchmark:
        bench("error_spectra")
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        error_spectra=config["error_spectra"],
        preparation=config["observed"]["preparation"],
    script:
        "../../scripts/error_spectra.py"


rule off_grid_test_set:
    """Test spectra off the training lattice: each its own SFH drawn from the family's prior and its own continuous
    [M/H], linear between the native SSPs (the evaluation's headline set).
    """
    input:
        library=rules.ssp_library.output.library,
    output:
        cube="results/spectra/{family}/off_grid_test.nc",
    log:
        "logs/off_grid_test_set/{family}.log",
    benchmark:
        bench("off_grid_test_set/{family}")
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=20,
    params:
        sfh=off_grid_sfh_settings,
        interpolate=config["ssp"]["interpolate"],
        spectra=pick(config["spectra"], "normalisation", "age_edges"),
        n_spectra=config["evaluation"]["off_grid"]["n_spectra"],
        seed=config["seed"],
    script:
        "../../scripts/off_grid_test_set.py"


rule spectra_plots:
    """Example SFHs with their percentiles, example spectra and the label distributions of one family."""
    input:
        sfh=rules.sfh.output.sfh,
        cubes=expand("results/spectra/{{family}}/{cell}.nc", cell=SPECTRA_CELLS),
    output:
        sfhs=report(
            "results/spectra/{family}_sfhs.png",
            caption="../report/spectra_sfhs.rst",
            category="2. SFHs and synthetic spectra",
        ),
        spectra=report(
            "results/spectra/{family}_spectra.png",
            caption="../report/spectra_examples.rst",
            category="2. SFHs and synthetic spectra",
        ),
        labels=report(
            "results/spectra/{family}_labels.png",
            caption="../report/spectra_labels.rst",
            category="2. SFHs and synthetic spectra",
        ),
    log:
        "logs/spectra_plots/{family}.log",
    benchmark:
        bench("spectra_plots/{family}")
    conda:
        "../../envs/galaxy-sbi.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        seed=config["seed"],
    script:
        "../../scripts/spectra_plots.py"


rule spectra:
    """Target: every SFH family, its spectra cubes and plots."""
    input:
        expand("results/sfh/{family}.nc", family=SFH_FAMILIES),
        expand(
            "results/spectra/{family}/{cell}.nc",
            family=SFH_FAMILIES,
            cell=SPECTRA_CELLS,
        ),
        expand(
            "results/spectra/{family}_{plot}.png",
            family=SFH_FAMILIES,
            plot=["sfhs", "spectra", "labels"],
        ),
