"""Inference tools shared by the rule graphs (calibration: SBC ranks, coverage, TARP)."""
