"""Scores of generated images against their targets: L1, PSNR, SSIM, FID and KID, and the gallery's table."""
