"""Experiment analysis: exposures and events to honest statistics (never decides variants)."""
