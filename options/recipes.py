"""--recipe NAME: a named set of training options, applied as defaults (any flag you type wins).

'reference' changes nothing. 'improved' turns on pix2pixHD's and SPADE's options, at their own settings,
together with the weight average. On facades at 2,000 iterations (docs/quality.md) it improved G on every
figure but did not beat the weight average alone on the semantic score; this is the one place to edit
when longer runs settle on another combination.
"""
RECIPES = {
    'reference': {},
    'improved': dict(
        netD='multiscale', num_D=2,   # pix2pixHD: PatchGANs on the pair at full and half size
        lambda_feat=10.0,             # pix2pixHD: feature matching on D's layers
        gan_mode='hinge',             # SPADE
        spectral_norm_D=True,         # SPADE
        lr=1e-4, lr_D=4e-4,           # SPADE: D learns 4x faster than G (two time-scale update rule)
        upsample='resize',            # no checkerboard
        ema_decay=0.999,              # the weight average (docs/quality.md)
    ),
}


def apply_recipe(opt):
    """Set the recipe's options that the user did not type (and that this model has)."""
    for key, value in RECIPES[opt.recipe].items():
        if hasattr(opt, key) and key not in opt.explicit:
            setattr(opt, key, value)
