"""--recipe NAME: a named set of training options, applied as defaults (any flag you type wins, and a resumed
run's saved architecture: options/resolution.py).

'reference' changes nothing. 'improved' is the combination of pix2pixHD's and SPADE's options and the
weight average that did best on facades at 2,000 iterations (docs/quality.md, 3 seeds each): SPADE's
hinge loss and spectral norm, resize upsampling, and the weight average with batch norm statistics
recomputed for it. Left out: SPADE's learning rates (G at 1e-4 learned less in a short run), and
pix2pixHD's multi-scale D and feature matching (no gain at that budget, for 1.14-1.23x the time).
This is the one place to edit when longer runs settle on another combination.
"""
RECIPES = {
    'reference': {},
    'improved': dict(
        gan_mode='hinge',             # SPADE
        spectral_norm_D=True,         # SPADE
        upsample='resize',            # no checkerboard
        ema_decay=0.999,              # the weight average (docs/quality.md)
        ema_bn_images=400,            # ... with batch norm statistics of its own, for --eval testing
    ),
}
