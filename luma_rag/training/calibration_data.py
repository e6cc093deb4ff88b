"""Write the calibration inputs shipped beside the tiny checkpoints (``luma_rag.calibration``).

The core measures the encoder radius ρ on attach from inputs that mean the same; it never
generates them. This command renders them once from the LUMA-Shapes generator, with the seeds
the engine used to use (text: paraphrase groups seed 1; images: 48 renders seed 3; bridge
warm-start captions: seed 2; audio residual captions: seed 4), so calibration gives the same
ρ as before the move::

    python -m luma_rag.training.calibration_data [--out luma_rag/encoders/checkpoints/calibration]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from luma_rag.calibration import DEFAULT_INPUTS_DIR

__all__ = ["main", "write_calibration_inputs"]

logger = logging.getLogger(__name__)

TEXT_GROUPS = 128
IMAGES = 48
BRIDGE_GROUPS = 1024  # 2 captions each: enough for a first fit at up to 2048 pairs
AUDIO_CAPTIONS = 128


def write_calibration_inputs(out: str | Path) -> Path:
    """Render the calibration set into ``out`` (``inputs.json`` + ``images/*.png``)."""
    from luma_rag.datasets.captions import paraphrase_groups
    from luma_rag.datasets.shapes import generate, load_manifest

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    names = []
    with tempfile.TemporaryDirectory() as tmp:
        manifest = generate(tmp, IMAGES, seed=3)
        for i, item in enumerate(load_manifest(manifest)):
            name = f"images/{i:03d}.png"
            shutil.copyfile(Path(tmp) / item.image, out / name)
            names.append(name)
    data = {
        "generated_by": "python -m luma_rag.training.calibration_data",
        "text_groups": paraphrase_groups(TEXT_GROUPS, seed=1),
        "images": names,
        "bridge_captions": [c for g in paraphrase_groups(BRIDGE_GROUPS, seed=2) for c in g[:2]],
        "audio_captions": [g[0] for g in paraphrase_groups(AUDIO_CAPTIONS, seed=4)],
    }
    (out / "inputs.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_INPUTS_DIR), help="output directory")
    args = parser.parse_args(argv)
    print(write_calibration_inputs(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
