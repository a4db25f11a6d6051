"""The parts of the Python LLM router, one concern each (app.py puts them together):

- `settings`: `[plugin.config]`: defaults, unknown keys refused, every problem named by its key.
- `prompt`: the model and the prompt stream read from an OpenAI-style body.
- `models`: which backends serve which model (backend label `model`).
- `blocks`: the prompt cut in blocks, and the prefix hashes at the checkpoint depths.
- `prefix_index`: which backends were sent which prefixes, kept in lbx's key-value store.
- `queue_estimate`: how many requests wait at a backend now, from a scrape that is already old.
- `ranking`: a candidate's score, and the order of the candidates.
"""
