# Stage 4: the latents of every spectrum and their interpretation (seed 3) -> results/latents/


rule latents_export:
    """The latents (and the head's predicted labels) of every spectrum of one family, with labels and split."""
    input:
        model=rules.encoder_train.output.model,
        cubes=spectra_files,
    output:
        latents="results/latents/{family}.nc",
    log:
        "logs/latents_export/{family}.log",
    benchmark:
        bench("latents_export/{family}")
    priority: critical_path_priority
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=family_memory_mb,
        runtime=60,
    script:
        "../../scripts/latents_export.py"


rule latents_plots:
    """Interpretation of one family's latents (seed 3): distributions, correlations, flux correlation, UMAP."""
    input:
        latents=rules.latents_export.output.latents,
        history=rules.encoder_train.output.history,
        cubes=spectra_files,
    output:
        distributions=report(
            "results/latents/{family}/distributions.png",
            caption="../report/latents_distributions.rst",
            category="3. Encoder and latents",
        ),
        correlation=report(
            "results/latents/{family}/correlation.png",
            caption="../report/latents_correlation.rst",
            category="3. Encoder and latents",
        ),
        flux_correlation=report(
            "results/latents/{family}/flux_correlation.png",
            caption="../report/latents_flux_correlation.rst",
            category="3. Encoder and latents",
        ),
        umap=report(
            "results/latents/{family}/umap.png",
            caption="../report/latents_umap.rst",
            category="3. Encoder and latents",
        ),
        performance=report(
            "results/latents/{family}/encoder_performance.png",
            caption="../report/encoder_performance.rst",
            category="3. Encoder and latents",
        ),
    log:
        "logs/latents_plots/{family}.log",
    benchmark:
        bench("latents_plots/{family}")
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=family_memory_mb,
        runtime=60,
    params:
        latents=without_runtime("latents"),
        seed=config["seed"],
    script:
        "../../scripts/latents_plots.py"


rule latents:
    """Target: every family's encoder, latents and interpretation plots."""
    input:
        expand(
            "results/encoder/{family}/{f}",
            family=SFH_FAMILIES,
            f=["encoder.ckpt", "metrics.json"],
        ),
        expand("results/latents/{family}.nc", family=SFH_FAMILIES),
        expand(
            "results/latents/{family}/{plot}.png",
            family=SFH_FAMILIES,
            plot=[
                "distributions",
                "correlation",
                "flux_correlation",
                "umap",
                "encoder_performance",
            ],
        ),
