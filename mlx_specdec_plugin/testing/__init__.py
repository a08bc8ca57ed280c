"""Fixtures for our tests and for plugin authors: tiny random models with a byte tokenizer
(:mod:`.tiny`, :mod:`.tiny_vlm`) and tiny drafter checkpoints in the published layouts
(:mod:`.drafters`). Nothing in the engine imports this package."""
