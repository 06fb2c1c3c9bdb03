"""Spectra rule graph: SSP libraries, SFHs, forward model, encoder."""
