"""Built-in drafting strategies, one module each; registered by :mod:`mlx_specdec_plugin.builtins`."""
