"""The local web page over `Generator`: `python -m videopoet_jax.app` (needs the `app` extra: gradio)."""
