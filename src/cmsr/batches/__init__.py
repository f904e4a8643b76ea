"""Batches: many pairs, resumable, on local worker processes or a Dask cluster."""
