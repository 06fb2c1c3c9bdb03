# Stage 4-5, 7: ANPE posteriors on the latents -> results/npe/{family}/, test-set evaluation (clean and at finite
# S/N), spectrum reconstruction -> results/evaluation/{family}/. `snakemake --cores 2 posterior` runs this stage;
# `snakemake --cores 2 ordering` the parametrisation study (not part of the default run).


wildcard_constraints:
    parametrisation="naive|ordered|log_gaps|linexp",


rule npe_train:
    """sbi NPE of the labels given the 16 latents, on the train + validation splits of one family, in one label
    parametrisation (the configured one for the evaluation, the other one for the ordering study).
    """
    input:
        latents="results/latents/{family}.nc",
        # noisy copies of the training spectra are encoded when npe.noise is enabled
        encoder="results/encoder/{family}/encoder.ckpt",
        cubes=spectra_files,
        # the observation-like copies' noise shapes
        error_spectra=rules.error_spectra.output.shapes,
    output:
        posterior="results/npe/{family}/posterior_{parametrisation}.pt",
        summary="results/npe/{family}/training_{parametrisation}.json",
    log:
        "logs/npe_train/{family}_{parametrisation}.log",
    benchmark:
        bench("npe_train/{family}_{parametrisation}")
    priority: critical_path_priority
    conda:
        "../../envs/galaxy-sbi.yaml"
    # one thread: the flow is small (a 2-thread torch was 4x slower per epoch when other jobs shared the cores),
    # and Snakemake can train both parametrisations side by side
    threads: 1
    resources:
        mem_mb=family_memory_mb,
        runtime=120,
    params:
        npe=npe_settings,
        seed=config["seed"],
    script:
        "../../scripts/npe_train.py"


rule npe_ordering_study:
    """Naive vs order-preserving (log-gap) parametrisation: order-breaking samples and R^2 on the test split."""
    input:
        latents="results/latents/{family}.nc",
        posteriors=ordering_posteriors,
    output:
        ordering="results/evaluation/{family}/ordering.json",
    log:
        "logs/npe_ordering_study/{family}.log",
    benchmark:
        bench("npe_ordering_study/{family}")
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        evaluation=pick(EVALUATION, "n_samples", "seed"),
    script:
        "../../scripts/npe_ordering_study.py"


rule npe_evaluate:
    """Posterior of every test spectrum: accuracy, coverage, SBC, TARP; the same posterior at each S/N."""
    input:
        posterior=configured_posterior,
        latents="results/latents/{family}.nc",
        encoder="results/encoder/{family}/encoder.ckpt",
        cubes=spectra_files,
        off_grid=rules.off_grid_test_set.output.cube,
        error_spectra=rules.error_spectra.output.shapes,
    output:
        metrics="results/evaluation/{family}/metrics.json",
        summary="results/evaluation/{family}/posterior_summary.nc",
        accuracy=report(
            "results/evaluation/{family}/accuracy.png",
            caption="../report/posterior_accuracy.rst",
            category="4. Posteriors",
        ),
        coverage=report(
            "results/evaluation/{family}/coverage.png",
            caption="../report/posterior_calibration.rst",
            category="4. Posteriors",
        ),
        sbc=report(
            "results/evaluation/{family}/sbc.png",
            caption="../report/posterior_calibration.rst",
            category="4. Posteriors",
        ),
        tarp=report(
            "results/evaluation/{family}/tarp.png",
            caption="../report/posterior_calibration.rst",
            category="4. Posteriors",
        ),
        snr=report(
            "results/evaluation/{family}/accuracy_vs_snr.png",
            caption="../report/posterior_snr.rst",
            category="4. Posteriors",
        ),
        accuracy_off_grid=report(
            "results/evaluation/{family}/accuracy_off_grid.png",
            caption="../report/posterior_off_grid.rst",
            category="4. Posteriors",
        ),
        coverage_off_grid=report(
            "results/evaluation/{family}/coverage_off_grid.png",
            caption="../report/posterior_off_grid.rst",
            category="4. Posteriors",
        ),
        degraded=report(
            "results/evaluation/{family}/degraded.png",
            caption="../report/posterior_degraded.rst",
            category="4. Posteriors",
        ),
    log:
        "logs/npe_evaluate/{family}.log",
    benchmark:
        bench("npe_evaluate/{family}")
    priority: critical_path_priority
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=family_memory_mb,
        runtime=120,
    params:
        evaluation=pick(EVALUATION, "n_samples", "seed", "snr", "degraded"),
        error_spectra_evaluation=config["error_spectra"]["evaluation"],
        seed=config["seed"],
        npe_noise=lambda wildcards: npe_noise(wildcards.family),
    script:
        "../../scripts/npe_evaluate.py"


rule conditioning_study:
    """At the fixed degradations: the family's posterior against NPEs matched to each and one conditioned on them."""
    input:
        posterior=configured_posterior,
        encoder="results/encoder/{family}/encoder.ckpt",
        cubes=spectra_files,
        off_grid=rules.off_grid_test_set.output.cube,
        error_spectra=rules.error_spectra.output.shapes,
    output:
        summary="results/evaluation/{family}/conditioning.json",
        png=report(
            "results/evaluation/{family}/conditioning.png",
            caption="../report/posterior_conditioning.rst",
            category="4. Posteriors",
        ),
    log:
        "logs/conditioning_study/{family}.log",
    benchmark:
        bench("conditioning_study/{family}")
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 2
    resources:
        mem_mb=family_memory_mb,
        runtime=240,
    params:
        npe=configured_npe_settings,
        evaluation=pick(EVALUATION, "n_samples", "seed", "degraded"),
        error_spectra=pick(config["error_spectra"], "power_range", "evaluation"),
        conditioning=config["conditioning"],
        seed=config["seed"],
    script:
        "../../scripts/conditioning_study.py"


rule reconstruction:
    """Posterior labels -> cumulative mass -> SFH -> spectrum through the forward model; residual rms."""
    input:
        posterior=configured_posterior,
        latents="results/latents/{family}.nc",
        cubes=spectra_files,
        grid="results/ssp/ssp_grid.nc",
        sfh="results/sfh/{family}.nc",
    output:
        summary="results/evaluation/{family}/reconstruction.json",
        plot=report(
            "results/evaluation/{family}/reconstruction.png",
            caption="../report/posterior_reconstruction.rst",
            category="4. Posteriors",
        ),
        rms_plot=report(
            "results/evaluation/{family}/reconstruction_rms.png",
            caption="../report/posterior_reconstruction.rst",
            category="4. Posteriors",
        ),
    log:
        "logs/reconstruction/{family}.log",
    benchmark:
        bench("reconstruction/{family}")
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=family_memory_mb,
        runtime=60,
    params:
        reconstruction=EVALUATION["reconstruction"],
        seed=EVALUATION["seed"],
    script:
        "../../scripts/reconstruction.py"


rule posterior:
    """Target: every family's NPE, test-set evaluation, S/N study and reconstruction."""
    input:
        [configured_posterior(family) for family in SFH_FAMILIES],
        expand(
            "results/evaluation/{family}/{f}",
            family=SFH_FAMILIES,
            f=[
                "metrics.json",
                "accuracy.png",
                "coverage.png",
                "sbc.png",
                "tarp.png",
                "accuracy_vs_snr.png",
                "accuracy_off_grid.png",
                "coverage_off_grid.png",
                "degraded.png",
                "reconstruction.json",
                "reconstruction.png",
                "reconstruction_rms.png",
            ],
        ),


rule conditioning:
    """Target: matched against conditioned posteriors at the fixed degradations (conditioning.families)."""
    input:
        expand(
            "results/evaluation/{family}/conditioning.{ext}",
            family=config["conditioning"]["families"],
            ext=["json", "png"],
        ),


rule ordering:
    """Target: the parametrisation study of every family (trains a second NPE per family)."""
    input:
        expand("results/evaluation/{family}/ordering.json", family=SFH_FAMILIES),
