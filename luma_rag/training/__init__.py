"""Training of the tiny offline checkpoints on LUMA-Shapes, and their evaluation.

``python -m luma_rag.training.train_clip`` trains ``luma-tiny-clip``;
:func:`luma_rag.training.evaluate.evaluate_retrieval` measures any encoder on a corpus.
Importing this package loads nothing heavy.
"""

from __future__ import annotations
