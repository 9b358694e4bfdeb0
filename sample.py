"""Stage-2 generation: `python sample.py --task=TASK [inputs] --output=PATH`.

Every task samples the multimodal LM and detokenizes with the stage-1 tokenizers. The LM is not built yet
(see the issue "The multimodal LM"), so each task currently exits with a clear error instead of output.
"""

import sys

from absl import app, flags

TASKS = (
  "text_to_video",
  "text_to_image",
  "image_to_video",
  "extend",
  "inpaint",
  "outpaint",
  "stylize",
  "video_to_audio",
  "text_to_audio",
)
flags.DEFINE_enum("task", None, TASKS, "What to generate.", required=True)
flags.DEFINE_string("output", None, "Where to write the result.", required=True)


def main(argv):
  del argv
  sys.exit(
    f"error: --task={flags.FLAGS.task} needs the multimodal LM, which this version does not include yet"
  )


if __name__ == "__main__":
  app.run(main)
