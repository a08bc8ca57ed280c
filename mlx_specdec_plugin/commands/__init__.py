"""The ``mlx-specdec`` command line: :mod:`.cli` dispatches each subcommand by importlib (as mlx-lm
does) to a ``main(argv)`` here (generate, strategies, calibrate, fetch, demo, doctor) or in a front-end
package (``bench``, ``server``, ``train``, ``vlm``). The top floor: nothing else imports it."""
