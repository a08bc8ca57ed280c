"""``mlx-specdec server``: an OpenAI-compatible HTTP server (mlx_lm.server's flags) with exact
speculative decoding; :mod:`.app` (requests, generation, routes), :mod:`.prefix_cache` (the reused
prompt-cache prefix). ``python -m mlx_specdec_plugin.server`` runs it."""
