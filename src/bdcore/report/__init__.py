"""Outputs of a run: results tables, manifest, resolved spec, plots and the HTML report."""
