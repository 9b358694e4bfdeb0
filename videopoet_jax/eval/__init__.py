"""Evaluation: reconstruction metrics for the tokenizers, per-task scores for the LM."""
