# The CHEMPY study (seed 001): simulate -> emulator -> NPE -> calibration -> multi-star inference -> results/chem/
# `snakemake --cores 2 chem` runs this graph alone.
import logging

CHEM_CHUNKS = range(CHEM["simulate"]["chunks"])
CHEM_SKIPPED = []
CHEM_DATASETS = ["simulator", "simulator_alt"]
if CHEM["multistar"]["tng_mock"]:
    CHEM_DATASETS.append("tng")
else:
    CHEM_SKIPPED.append(
        "tng: chem.multistar.tng_mock is null (packaged runs the copy shipped with galaxy-sbi)"
    )
if CHEM["multistar"]["vice"]["enabled"]:
    CHEM_DATASETS.append("vice")
else:
    CHEM_SKIPPED.append("vice: chem.multistar.vice.enabled is false")
for _note in CHEM_SKIPPED:
    logging.getLogger("chem").warning("chem data set skipped: %s", _note)


wildcard_constraints:
    chunk=r"\d+",
    kind="joint|global",
    dataset="simulator|simulator_alt|tng|vice",


rule chem_simulate:
    """One chunk of simulator runs from the uniform training box (accepted sets only)."""
    output:
        chunk="results/chem/simulations/chunk_{chunk}.npz",
    log:
        "logs/chem_simulate/{chunk}.log",
    benchmark:
        bench("chem_simulate/{chunk}")
    priority: CHEM_PRIORITY
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        seed=config["seed"],
        priors=CHEM["priors"],
        yields=CHEM["yields"],
        simulate=CHEM["simulate"],
    script:
        "../../scripts/chem_simulate.py"


rule chem_collect:
    """Training and validation sets of the simulator in one netCDF."""
    input:
        chunks=expand("results/chem/simulations/chunk_{chunk}.npz", chunk=CHEM_CHUNKS),
    output:
        simulations="results/chem/simulations.nc",
    log:
        "logs/chem_collect.log",
    benchmark:
        bench("chem_collect")
    priority: CHEM_PRIORITY
    conda:
        "../../envs/galaxy-sbi.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        chem={k: CHEM[k] for k in ("priors", "yields", "simulate")},
    script:
        "../../scripts/chem_collect.py"


rule chem_emulator:
    """Lightning MLP emulator of the simulator; validation APE, loss curve."""
    input:
        simulations=rules.chem_collect.output.simulations,
    output:
        model="results/chem/emulator.pt",
        metrics="results/chem/emulator_metrics.json",
        loss=report(
            "results/chem/emulator_loss.png",
            caption="../report/chem_emulator.rst",
            category="6. Chemistry",
        ),
        ape=report(
            "results/chem/emulator_ape.png",
            caption="../report/chem_emulator.rst",
            category="6. Chemistry",
        ),
    log:
        "logs/chem_emulator.log",
    benchmark:
        bench("chem_emulator")
    priority: CHEM_PRIORITY
    conda:
        "../../envs/galaxy-sbi.yaml"
    # One thread: the small MLP's steps are overhead-bound; measured on the busy 2-core machine, 2 intra-op threads
    # ran an epoch of 400k sets in ~50 s, one thread in ~13 s.
    threads: 1
    resources:
        mem_mb=6000,
        runtime=120,
    params:
        seed=config["seed"],
        priors=CHEM["priors"],
        emulator=CHEM["emulator"],
    script:
        "../../scripts/chem_emulator.py"


rule chem_npe:
    """NPE on noisy draws: joint (six parameters, emulator) or global (alpha_IMF, log10_N_Ia; simulator or emulator)."""
    input:
        # the joint NPE (and the global one with global_source: emulator) needs the emulator; the global NPE on
        # simulator draws does not, so it trains while the emulator does
        unpack(chem_npe_inputs),
    output:
        posterior="results/chem/npe_{kind}.pt",
    log:
        "logs/chem_npe/{kind}.log",
    benchmark:
        bench("chem_npe/{kind}")
    priority: CHEM_PRIORITY
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=240,
    params:
        seed=config["seed"],
        priors=CHEM["priors"],
        yields=chem_npe_yields,
        npe=chem_npe_settings,
    script:
        "../../scripts/chem_npe.py"


rule chem_npe_evaluate:
    """The joint NPE on the simulator's validation set: APE per parameter, SBC ranks, TARP."""
    input:
        posterior="results/chem/npe_joint.pt",
        simulations=rules.chem_collect.output.simulations,
    output:
        metrics="results/chem/npe_metrics.json",
        sbc=report(
            "results/chem/npe_sbc.png",
            caption="../report/chem_npe.rst",
            category="6. Chemistry",
        ),
        tarp=report(
            "results/chem/npe_tarp.png",
            caption="../report/chem_npe.rst",
            category="6. Chemistry",
        ),
    log:
        "logs/chem_npe_evaluate.log",
    benchmark:
        bench("chem_npe_evaluate")
    priority: CHEM_PRIORITY
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        seed=config["seed"],
        npe=pick(CHEM["npe"], "n_evaluate", "n_posterior_samples", "noise_dex"),
    script:
        "../../scripts/chem_npe_evaluate.py"


rule chem_dataset:
    """Observables of the stars of one galaxy (one data set)."""
    output:
        data="results/chem/datasets/{dataset}.npz",
    log:
        "logs/chem_dataset/{dataset}.log",
    benchmark:
        bench("chem_dataset/{dataset}")
    priority: CHEM_PRIORITY
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        dataset=chem_dataset_settings,
    script:
        "../../scripts/chem_dataset.py"


rule chem_systematics:
    """Systematic-error kernel of the calibrated combination: grid posteriors of mock galaxies of the training
    simulator (their own random stream, not the coverage study's)."""
    input:
        glob="results/chem/npe_global.pt",
    output:
        systematics="results/chem/systematics.json",
    log:
        "logs/chem_systematics.log",
    benchmark:
        bench("chem_systematics")
    priority: CHEM_PRIORITY
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        seed=config["seed"],
        priors=CHEM["priors"],
        yields=CHEM["yields"],
        grid=chem_grid_settings(),
        systematics=CHEM["systematics"],
        noise_dex=CHEM["npe"]["noise_dex"],
    script:
        "../../scripts/chem_systematics.py"


# multistar, coverage, timing (like npe, systematics): one thread. The flows are small; on the shared 2-core
# machine two intra-op threads ran ~4x slower per NPE epoch than one, and two one-thread jobs run side by side.
rule chem_multistar:
    """alpha_IMF and log10_N_Ia from 1 ... N stars of one data set, two combinations, timed."""
    input:
        data=rules.chem_dataset.output.data,
        joint="results/chem/npe_joint.pt",
        glob="results/chem/npe_global.pt",
        systematics=rules.chem_systematics.output.systematics,
    output:
        result="results/chem/multistar/{dataset}.json",
    log:
        "logs/chem_multistar/{dataset}.log",
    benchmark:
        bench("chem_multistar/{dataset}")
    priority: CHEM_PRIORITY
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        seed=config["seed"],
        priors=CHEM["priors"],
        multistar=pick(
            CHEM["multistar"], "star_counts", "n_samples", "n_grid", "n_coarse"
        ),
    script:
        "../../scripts/chem_multistar.py"


rule chem_coverage:
    """Coverage of the Gaussian and the grid combination over mock galaxies."""
    input:
        joint="results/chem/npe_joint.pt",
        glob="results/chem/npe_global.pt",
        systematics=rules.chem_systematics.output.systematics,
    output:
        data="results/chem/coverage.npz",
        metrics="results/chem/coverage_metrics.json",
        png=report(
            "results/chem/coverage.png",
            caption="../report/chem_multistar.rst",
            category="6. Chemistry",
        ),
    log:
        "logs/chem_coverage.log",
    benchmark:
        bench("chem_coverage")
    priority: CHEM_PRIORITY
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=120,
    params:
        seed=config["seed"],
        priors=CHEM["priors"],
        yields=CHEM["yields"],
        multistar=pick(CHEM["multistar"], "n_samples", "n_grid", "n_coarse"),
        coverage=CHEM["coverage"],
        noise_dex=CHEM["npe"]["noise_dex"],
    script:
        "../../scripts/chem_coverage.py"


rule chem_timing:
    """emcee on the emulator to convergence for 1 ... 30 stars of data set 1, against the NPE on the same stars."""
    input:
        emulator=rules.chem_emulator.output.model,
        data="results/chem/datasets/simulator.npz",
        joint="results/chem/npe_joint.pt",
        glob="results/chem/npe_global.pt",
        systematics="results/chem/systematics.json",
    output:
        json="results/chem/timing.json",
        csv="results/chem/timing.csv",
        md="results/chem/timing.md",
        png=report(
            "results/chem/timing.png",
            caption="../report/chem_timing.rst",
            category="6. Chemistry",
        ),
    log:
        "logs/chem_timing.log",
    benchmark:
        bench("chem_timing")
    priority: CHEM_PRIORITY
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        seed=config["seed"],
        priors=CHEM["priors"],
        timing=CHEM["timing"],
        # the NPE side's sampling settings only (not the data sets' star counts)
        multistar={
            k: v
            for k, v in CHEM["multistar"].items()
            if k in ("n_samples", "n_grid", "n_coarse")
        },
        noise_dex=CHEM["npe"]["noise_dex"],
    script:
        "../../scripts/chem_timing.py"


rule chem_vice_check:
    """The VICE stars against our simulator at the same parameters and yields (the difference is the code)."""
    input:
        data="results/chem/datasets/vice.npz",
    output:
        summary="results/chem/vice_vs_simulator.json",
        png=report(
            "results/chem/vice_vs_simulator.png",
            caption="../report/chem_vice.rst",
            category="6. Chemistry",
        ),
    log:
        "logs/chem_vice_check.log",
    benchmark:
        bench("chem_vice_check")
    priority: CHEM_PRIORITY
    conda:
        "../../envs/galaxy-sbi.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        preset=CHEM["multistar"]["vice"]["preset"],
    script:
        "../../scripts/chem_vice_check.py"


rule chem_report:
    """The study's table, estimates vs number of stars, metrics.json."""
    input:
        multistar=expand("results/chem/multistar/{dataset}.json", dataset=CHEM_DATASETS),
        emulator=rules.chem_emulator.output.metrics,
        npe=rules.chem_npe_evaluate.output.metrics,
        systematics=rules.chem_systematics.output.systematics,
    output:
        csv="results/chem/table.csv",
        md="results/chem/table.md",
        metrics="results/chem/metrics.json",
        png=report(
            "results/chem/multistar_vs_nstars.png",
            caption="../report/chem_multistar.rst",
            category="6. Chemistry",
        ),
    log:
        "logs/chem_report.log",
    benchmark:
        bench("chem_report")
    priority: CHEM_PRIORITY
    conda:
        "../../envs/galaxy-sbi.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        skipped=CHEM_SKIPPED,
    script:
        "../../scripts/chem_report.py"


rule chem:
    """Target: the chemistry graph's products (the studies below are their own target)."""
    input:
        rules.chem_emulator.output,
        rules.chem_npe_evaluate.output,
        rules.chem_report.output,
        rules.chem_vice_check.output if "vice" in CHEM_DATASETS else [],


rule chem_studies:
    """Target: coverage of both combinations over mock galaxies, and the emcee timing baseline."""
    input:
        rules.chem_coverage.output,
        rules.chem_timing.output,
