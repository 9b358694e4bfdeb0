"""Sampling from the prefix LM: KV-cache prefill and decode loop, constrained schedules, guidance."""

from videopoet_jax.decoding.sampler import DecodeState, generate, generate_stepwise, prefill
from videopoet_jax.decoding.schedule import OutputSchedule, Segment, schedule_from_segments
from videopoet_jax.decoding.settings import Filters, SamplingSettings

__all__ = [
  "DecodeState",
  "Filters",
  "OutputSchedule",
  "SamplingSettings",
  "Segment",
  "generate",
  "generate_stepwise",
  "prefill",
  "schedule_from_segments",
]
