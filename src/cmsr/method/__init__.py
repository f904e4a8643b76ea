"""The method: CMSR trained on the one pair, in the order data flows.

=========================  ==========================================================
module                     job
=========================  ==========================================================
:mod:`.resample`           MATLAB-style resizing, degradations and blur kernels
:mod:`.config`             every setting of a run, and the presets
:mod:`.validate`           checks on a pair and on a mask, with one-line errors
:mod:`.normalize`          arrays (own units, own dtype) <-> unit-range tensors
:mod:`.threads`            the torch thread count for one block of work
:mod:`.warp`               the learnable alignment of the guide (affine, CPAB, TPS)
:mod:`.patches`            differentiable random affine crops, the two training schemes
:mod:`.model`              CMSRNet: two feature extractors and the residual sum
:mod:`.learning_rate`      the learning rate by the slope of the reconstruction error
:mod:`.train`              the training loop (with guide dropout)
:mod:`.coarse_alignment`   the warp's first fits on the pair reduced by 4 and 2
:mod:`.self_check`         held-out pixels: does the guide help on this pair?
:mod:`.consistency`        optional fine-tuning at the target's own scale
:mod:`.infer`              tiles, self-ensemble, back-projection, range clipping
:mod:`.guide_shift`        the guide's whole-pixel offset for the guided finishes
:mod:`.guided_median`      finish: each pixel the guide-weighted median around it
:mod:`.edge_sharpening`    finish: in-between pixels of a step onto its nearer side
:mod:`.block_partition`    finish: a step's measured pixels split between its sides
:mod:`.checkpoint`         saved warps and checkpoints for warm starts
:mod:`.api`                :class:`~cmsr.method.api.CMSR` (fit / predict), super_resolve
:mod:`.tiled_inference`    the tiles of a large output, each with its halo
:mod:`.streaming`          super_resolve_tiled: fit on a part, the result tile by tile
:mod:`.georeferenced`      super_resolve_geotiff: GeoTIFF to GeoTIFF, streamed when large
=========================  ==========================================================
"""
