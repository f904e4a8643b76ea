"""Evaluation against ground truth: ``cmsr eval`` and the baselines it compares.

=========================  ==========================================================
module                     job
=========================  ==========================================================
:mod:`.datasets`           scene folders and CSV manifests
:mod:`.metrics`            RMSE, MAE, PSNR, SSIM with masks and border crops
:mod:`.displacement`       moving the guide for misalignment studies
:mod:`.protocols`          how an evaluation's input is made from the truth
:mod:`.usage`              time and peak memory of a run
:mod:`.baselines`          bicubic, guided filter, JBU, ZSSR, P2P, MMSR
:mod:`.evaluate`           run methods on scenes, score them, keep finished runs
:mod:`.report`             Markdown / CSV tables and comparison grids
=========================  ==========================================================
"""
