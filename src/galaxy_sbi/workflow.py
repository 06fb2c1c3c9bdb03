"""Glue for the thin rule scripts in scripts/: logging to the rule's log file, clean errors, runtime settings."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from .errors import InputError

# Config keys that change only speed, storage or display, never a product's content: rules do not carry them
# as params (changing one re-runs nothing); scripts read them from the config with `runtime()`.
RUNTIME_KEYS = {
    "spectra": ("chunk_samples", "complevel"),  # netCDF chunking and compression of the cubes
    "encoder": ("accelerator", "progress_refresh"),
    "latents": ("batch_size",),  # pure inference
    "evaluation": ("encode_batch_size",),  # pure inference
}


def runtime(smk, section: str) -> dict:
    """The speed / display settings of a config section (see RUNTIME_KEYS)."""
    return {k: smk.config[section][k] for k in RUNTIME_KEYS[section]}


def run_script(main: Callable, smk) -> None:
    """Run `main(smk)` with logging to the rule's log file and stderr.

    An InputError (bad user input) ends the job with its one-line message, not a traceback.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if smk.log:
        handlers.append(logging.FileHandler(str(smk.log[0]), mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", handlers=handlers, force=True)
    # torch takes every core by default (its spinning threads then fight other jobs): the rule's threads instead;
    # the chem scripts get torch through galaxy_sbi.chem, so none of them sets it again
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(max(1, int(smk.threads)))
    try:
        main(smk)
    except InputError as exc:
        logging.getLogger(f"rule {smk.rule}").error("%s", exc)
        sys.exit(f"error: {exc}")
