"""``mlx-specdec bench``: tokens/s, speedup, tau and acceptance by position, plain vs mlx-lm vs ours
(:mod:`.runner`)."""
