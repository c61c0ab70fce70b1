"""Measuring how the pipeline's cost grows with the data: runs on synthetic data of a given size,
each stage timed and its peak memory taken, and the table with growth exponents."""

from movierec.scaling.measure import Measurement, measured
from movierec.scaling.runner import ScaleRun, run_scale
from movierec.scaling.table import growth_exponent, scaling_table, write_scaling

__all__ = ["Measurement", "ScaleRun", "growth_exponent", "measured", "run_scale", "scaling_table", "write_scaling"]
