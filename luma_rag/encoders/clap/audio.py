"""Compatibility re-export: audio loading lives in :mod:`luma_rag.media.audio`.

Kept because the CLAP training script imports ``load_audio`` from here; new code imports
:mod:`luma_rag.media`.
"""

from __future__ import annotations

from luma_rag.media.audio import MAX_SECONDS, AudioSource, load_audio

__all__ = ["MAX_SECONDS", "AudioSource", "load_audio"]
