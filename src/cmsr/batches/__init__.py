"""Batches: many pairs, resumable, on local worker processes or a Dask cluster.

==================  =================================================================
module              job
==================  =================================================================
:mod:`.plan`        the shared settings, one job per scene, chains of jobs
:mod:`.results`     how each job ended, the manifest of finished jobs, the summary
:mod:`.run`         one job's input, training and output; the whole batch
:mod:`.backends`    where the jobs run: this process, local processes or Dask
==================  =================================================================
"""
