# Stage 3: encoder (spectra -> 16 latents -> labels) -> results/encoder/{family}/, latents -> results/latents/
# The checkpoints folder results/encoder/{family}/checkpoints/ is deliberately not an output: Snakemake keeps it
# when a training job fails or is killed, and a re-run (profiles set rerun-incomplete) resumes from last.ckpt.


rule encoder_train:
    """Train the encoder + label head of one SFH family with the Lightning Trainer (GPU when there is one)."""
    input:
        cubes=spectra_files,
    output:
        model="results/encoder/{family}/encoder.ckpt",
        metrics="results/encoder/{family}/metrics.json",
        history="results/encoder/{family}/history.csv",
    params:
        encoder=without_runtime("encoder"),
        seed=config["seed"],
        # resumable training state (checkpoints/, csv/ loss logs), deliberately not an output (see above)
        work_dir=lambda wildcards: f"results/encoder/{wildcards.family}",
    log:
        "logs/encoder/{family}_train.log",
    benchmark:
        bench("encoder/{family}_train")
    # two threads run an encoder batch 1.9x faster than one (measured on the 2-core machine); more on a bigger
    # machine with `--set-threads encoder_train=N`. Priority: see CHAIN_PRIORITY_TO_ENCODERS in common.smk
    threads: 2
    priority: CHAIN_PRIORITY_TO_ENCODERS
    resources:
        mem_mb=family_memory_mb,
        runtime=720,
    conda:
        "../../envs/galaxy-sbi.yaml"
    script:
        "../../scripts/encoder_train.py"


rule latents_export:
    """The latents (and the head's predicted labels) of every spectrum of one family, with labels and split."""
    input:
        model=rules.encoder_train.output.model,
        cubes=spectra_files,
    output:
        latents="results/latents/{family}.nc",
    log:
        "logs/latents/{family}_export.log",
    benchmark:
        bench("latents/{family}_export")
    threads: 1
    priority: critical_path_priority
    resources:
        mem_mb=family_memory_mb,
        runtime=60,
    conda:
        "../../envs/galaxy-sbi.yaml"
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
    params:
        latents=without_runtime("latents"),
        seed=config["seed"],
    log:
        "logs/latents/{family}_plots.log",
    benchmark:
        bench("latents/{family}_plots")
    threads: 1
    resources:
        mem_mb=family_memory_mb,
        runtime=60,
    conda:
        "../../envs/galaxy-sbi.yaml"
    script:
        "../../scripts/latents_plots.py"


rule latents:
    """Target: every family's encoder, latents and interpretation plots."""
    input:
        expand("results/encoder/{family}/{f}", family=SFH_FAMILIES, f=["encoder.ckpt", "metrics.json"]),
        expand("results/latents/{family}.nc", family=SFH_FAMILIES),
        expand(
            "results/latents/{family}/{plot}.png",
            family=SFH_FAMILIES,
            plot=["distributions", "correlation", "flux_correlation", "umap", "encoder_performance"],
        ),
