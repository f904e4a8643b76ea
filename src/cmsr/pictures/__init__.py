"""Pictures and progress for people.

=========================  ==========================================================
module                     job
=========================  ==========================================================
:mod:`.display`            any array as a picture: colormaps, error maps, overlays
:mod:`.panels`             labelled panel grids, colour bars, the alignment figure
:mod:`.curves`             the loss curve of a training run
:mod:`.progress`           the terminal progress bar of a training run
=========================  ==========================================================
"""
