"""Pictures and progress for people.

=========================  ==========================================================
module                     job
=========================  ==========================================================
:mod:`.display`            pictures: display images, error maps, overlays, grids, curves
:mod:`.progress`           the terminal progress bar of a training run
=========================  ==========================================================
"""
