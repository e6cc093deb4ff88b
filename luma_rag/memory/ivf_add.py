"""Adding already-computed PQ codes to a trained warm index, so no vector is encoded twice.

:func:`~luma_rag.memory.ivfpq.prepare` assigns each vector to its IVF list and PQ-encodes it (it
needs the code for ζ). FAISS's ``add_with_ids`` would assign and encode the same vectors again,
so :func:`add_codes` inserts the prepared (list, code) pairs directly and gives the index the
same bytes ``add_with_ids`` gives it (tested on serialized indexes and search results):

- fast-scan (4-bit) indexes keep their codes packed in blocks of ``bbs`` per list: like FAISS,
  entries go to each list in input order, their ids appended, their codes packed with the
  index's own code packer into the list's blocks (grown and zero-filled by ``resize``);
- 8-bit indexes take ``add_sa_codes`` (list number + code), which stores codes unpacked.

FAISS's own ``add_sa_codes`` / ``add_core`` must not be used on a fast-scan index: they write
unpacked codes into packed blocks (wrong results, or a corrupted heap). Indexes of another shape
(a direct map, a wrapped IVF) return False and the caller uses ``add_with_ids``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["add_codes"]

logger = logging.getLogger(__name__)


def add_codes(index: Any, keys: np.ndarray, lists: np.ndarray, codes: np.ndarray) -> bool:
    """Append (n,) int64 ``keys`` with their IVF ``lists`` (n,) and PQ ``codes`` (n, code_size)
    uint8 to the trained IVF-PQ ``index``. Returns False, changing nothing, where the index is
    not one this can add to exactly (then use ``add_with_ids``)."""
    import faiss

    ivf = faiss.downcast_index(index)
    if not isinstance(ivf, faiss.IndexIVFPQFastScan | faiss.IndexIVFPQ):
        return False
    if ivf.direct_map.type != faiss.DirectMap.NoMap or not ivf.is_trained:
        return False
    n, code_size = codes.shape if codes.ndim == 2 else (0, 0)
    if n != len(keys) or n != len(lists) or code_size != ivf.code_size:
        return False
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    if isinstance(ivf, faiss.IndexIVFPQFastScan):
        return _add_packed(ivf, keys, np.asarray(lists, dtype=np.int64), codes)
    coarse = int(ivf.coarse_code_size())
    sa = np.empty((n, coarse + code_size), dtype=np.uint8)
    sa[:, :coarse] = np.asarray(lists, dtype="<i8").view(np.uint8).reshape(n, 8)[:, :coarse]
    sa[:, coarse:] = codes
    ivf.add_sa_codes(sa, keys)
    return True


def _add_packed(ivf: Any, keys: np.ndarray, lists: np.ndarray, codes: np.ndarray) -> bool:
    """FAISS's ``IndexIVFFastScan::add_with_ids`` after its assign and encode, in Python."""
    import faiss

    invlists = faiss.downcast_InvertedLists(ivf.invlists)
    if not isinstance(invlists, faiss.BlockInvertedLists):
        return False
    if len(lists) and (lists.min() < 0 or lists.max() >= ivf.nlist):
        return False
    packer = ivf.get_CodePacker()  # owned by us (a new object per call)
    order = np.argsort(lists, kind="stable")  # FAISS: stable sort by list, input order within
    bounds = np.flatnonzero(np.diff(lists[order])) + 1
    for group in np.split(order, bounds):
        if not group.size:
            continue
        list_no = int(lists[group[0]])
        start = int(invlists.list_size(list_no))
        invlists.resize(list_no, start + len(group))
        ids = faiss.rev_swig_ptr(invlists.get_ids(list_no), start + len(group))
        ids[start:] = keys[group]
        block = invlists.get_codes(list_no)
        for offset, row in enumerate(group.tolist(), start):
            packer.pack_1_c(faiss.swig_ptr(codes[row]), offset, block)
    ivf.ntotal += len(keys)
    return True
