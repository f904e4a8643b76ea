"""Learned models: a network trained once on many pairs of one rig or modality, then applied
to new frames in well under a second, with no per-frame fitting (CSPSR: Learning
Cross-Spectral Prior for Image Super-Resolution).

==================  =================================================================
module              job
==================  =================================================================
:mod:`.config`      the architecture (:class:`ModelConfig`) and training settings
:mod:`.matching`    cross-view matching: disparities, cost volume, warps
:mod:`.network`     the dual-branch network with T fusion modules
:mod:`.loss`        the reconstruction loss, the cross-spectral consistency loss, the
                    matching loss
:mod:`.model_file`  saving and loading self-describing model files and checkpoints
:mod:`.inference`   applying a model to one pair (tiled when large)
:mod:`.training`    training over many pairs: patches, validation, time budget, resume
==================  =================================================================

Nothing here reads scene folders: the command line (``cmsr train``) makes the pairs
with :mod:`cmsr.evaluation` and hands them over as arrays.
"""
