"""Developer tools, not shipped in the wheel: the oracle and rollback benches, the server load test,
the training-prompt generator and the layout-move import rewriter. Run from the repository root
(``python -m tools.oracle_bench ...``)."""
