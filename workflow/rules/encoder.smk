# Stage 3: encoder (spectra -> 16 latents -> labels) -> results/encoder/{family}/; its latents: latents.smk
# The checkpoints folder results/encoder/{family}/checkpoints/ is deliberately not an output: Snakemake keeps it
# when a training job fails or is killed, and a re-run (profiles set rerun-incomplete) resumes from last.ckpt.


rule encoder_train:
    """Train the encoder + label head of one SFH family with the Lightning Trainer (GPU when there is one)."""
    input:
        cubes=spectra_files,
        # the augmentation's noise shapes
        error_spectra=rules.error_spectra.output.shapes,
    output:
        model="results/encoder/{family}/encoder.ckpt",
        metrics="results/encoder/{family}/metrics.json",
        history="results/encoder/{family}/history.csv",
    log:
        "logs/encoder_train/{family}.log",
    benchmark:
        bench("encoder_train/{family}")
    priority: CHAIN_PRIORITY_TO_ENCODERS
    conda:
        "../../envs/galaxy-sbi.yaml"
    # two threads run an encoder batch 1.9x faster than one (measured on the 2-core machine); more on a bigger
    # machine with `--set-threads encoder_train=N`. Priority: see CHAIN_PRIORITY_TO_ENCODERS in common.smk
    threads: 2
    resources:
        mem_mb=family_memory_mb,
        runtime=720,
    params:
        encoder=encoder_settings,
        seed=config["seed"],
        # resumable training state (checkpoints/, csv/ loss logs), deliberately not an output (see above)
        work_dir=lambda wildcards: f"results/encoder/{wildcards.family}",
    script:
        "../../scripts/encoder_train.py"
