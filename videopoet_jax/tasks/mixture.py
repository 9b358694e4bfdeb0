"""The task mixture: which tasks each training step trains, grouped by sequence length.

As in VideoPoet (alternating gradient descent over length groups): tasks sorted by their longest sequence
are grouped while the group's longest stays within `length_tolerance` (a fraction) of its shortest; each
step samples one group and fills its batch with that group's tasks, padded to the group's length, so a
batch is padded only by that tolerance plus what short captions or dropped conditioning leave. Shorter
groups get proportionally more sequences (about the same tokens per step).

Task probabilities come from `mixture.weights`; image-output tasks are rescaled to `early_image_share` of
the mass for the first `early_fraction` of training and to `late_image_share` after it (VideoPoet: 90%
images for the first 25% of steps, then 10%). Everything drawn is a pure function of (seed, step).
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from videopoet_jax.tasks import registry, sequence


@dataclasses.dataclass(frozen=True)
class Group:
  tasks: tuple[str, ...]
  length: int  # every batch of this group is padded to this length
  batch_size: int


@dataclasses.dataclass(frozen=True)
class Draw:
  """One step's batch plan: its group, and per example a task and the inputs dropped for guidance."""

  group: Group
  tasks: tuple[str, ...]
  drops: tuple[tuple[str, ...], ...]


def is_image_task(task: registry.Task) -> bool:
  return task.output.modality == "video" and task.output.frames == "first"


class Mixture:
  def __init__(
    self,
    mixture: ml_collections.ConfigDict,
    layout: sequence.Layout,
    batch_size: int,
    batch_multiple: int,
    total_steps: int,
    seed: int,
  ):
    """`batch_size` is the batch of the longest group; every group's batch is a multiple of
    `batch_multiple` (the data-parallel device count)."""
    self.config, self.total_steps, self.seed = mixture, total_steps, seed
    self.weights = {name: float(w) for name, w in mixture.weights.items() if w > 0}
    if not self.weights:
      raise ValueError("mixture.weights gives no task a positive weight")
    for name in self.weights:
      registry.get(name)
    if batch_size % batch_multiple:
      raise ValueError(f"batch_size {batch_size} is not a multiple of {batch_multiple} devices")
    lengths = {name: sequence.max_length(registry.TASKS[name], layout) for name in self.weights}
    grouped: list[list[str]] = []
    for name in sorted(self.weights, key=lambda n: (lengths[n], n)):
      if grouped and lengths[name] <= (1 + mixture.length_tolerance) * lengths[grouped[-1][0]]:
        grouped[-1].append(name)
      else:
        grouped.append([name])
    longest = max(lengths.values())
    self.groups = []
    for names in grouped:
      length = lengths[names[-1]]
      size = batch_size * longest // length // batch_multiple * batch_multiple
      self.groups.append(Group(tuple(names), length, max(size, batch_multiple)))

  def task_probabilities(self, step: int) -> dict[str, float]:
    """Probability of each task at `step` (image-output tasks rescaled by the schedule)."""
    images = {n for n in self.weights if is_image_task(registry.TASKS[n])}
    early = step < self.config.early_fraction * self.total_steps
    share = self.config.early_image_share if early else self.config.late_image_share
    image_mass = sum(self.weights[n] for n in images)
    other_mass = sum(w for n, w in self.weights.items() if n not in images)
    if not images or not other_mass:
      total = sum(self.weights.values())
      return {n: w / total for n, w in self.weights.items()}
    return {
      n: (share * w / image_mass if n in images else (1 - share) * w / other_mass)
      for n, w in self.weights.items()
    }

  def draw(self, step: int) -> Draw:
    """The batch plan of `step` (deterministic in seed and step)."""
    rng = np.random.default_rng((self.seed, step))
    probabilities = self.task_probabilities(step)
    group_mass = np.array([sum(probabilities[n] for n in g.tasks) for g in self.groups])
    group = self.groups[rng.choice(len(self.groups), p=group_mass / group_mass.sum())]
    within = np.array([probabilities[n] for n in group.tasks])
    picks = rng.choice(len(group.tasks), size=group.batch_size, p=within / within.sum())
    tasks = tuple(group.tasks[i] for i in picks)
    dropped = rng.random(group.batch_size) < self.config.guidance_drop_rate
    drops = tuple(registry.TASKS[t].guidance_inputs if d else () for t, d in zip(tasks, dropped, strict=True))
    return Draw(group, tasks, drops)
