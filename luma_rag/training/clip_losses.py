"""Loss terms of the compositional tiny CLIP (training only; nothing here is exported).

* :func:`group_clip_loss` - symmetric InfoNCE where every relevant (image, text) pair is a
  positive. Texts may outnumber images (referents, hard negatives): an image row spreads its
  target over every text that describes it; a text column with no relevant image in the
  batch (a hard negative, usually) only acts as a negative for the image rows.
* :func:`attribute_heads` / :func:`attribute_loss` - linear classifiers of shape, colour,
  size, position and count on the *normalised image embedding*, trained with the towers and
  dropped at export. Shape is seen in eight colours in train, so a linear read-out of shape
  that works on train must use the outline, not the colour: exactly what a linear probe on
  unseen shape/colour combinations measures.
* :func:`anchor_loss` - keeps the text embedding of full captions near a frozen teacher's
  (the checkpoint the run started from), so models aligned to the old text space (the tiny
  CLAP, through the Procrustes bridge) stay aligned.
"""

from __future__ import annotations

from typing import Any, Final

from luma_rag.training.clip_texts import ATTRIBUTE_VALUES, REQUIREMENT_KEYS

__all__ = [
    "HEAD_KEYS",
    "anchor_loss",
    "attribute_heads",
    "attribute_loss",
    "group_clip_loss",
    "off_vocabulary_colors",
    "recolor",
    "relevance",
    "to_gray",
]

#: Attributes the training-only heads classify (columns of the item codes, in order).
HEAD_KEYS: Final = ("shape", "color", "size", "position", "count")


def relevance(item_codes: Any, text_reqs: Any) -> Any:
    """bool ``(n_images, n_texts)``: image ``i`` matches every value text ``j`` names.

    Args:
        item_codes: int64 tensor ``(n_images, n_keys)`` of attribute codes.
        text_reqs: int64 tensor ``(n_texts, n_keys)``, ``-1`` where the text names nothing.
    """
    req = text_reqs[None, :, :]
    return ((req < 0) | (req == item_codes[:, None, :])).all(dim=2)


def group_clip_loss(img: Any, txt: Any, scale: Any, rel: Any, torch: Any) -> Any:
    """Symmetric InfoNCE with group targets over ``(n_images, n_texts)`` logits.

    Args:
        img: float ``(n_images, d)`` unit rows.
        txt: float ``(n_texts, d)`` unit rows.
        scale: Logit scale (a scalar tensor).
        rel: bool ``(n_images, n_texts)``; every image row has at least one true entry.
        torch: The torch module.

    Returns:
        Scalar loss: mean of the image->text and text->image cross-entropies (the latter
        over the texts that have a relevant image).
    """
    logits = scale * img @ txt.T
    relf = rel.float()
    i2t = relf / relf.sum(dim=1, keepdim=True)
    loss_i2t = -(i2t * torch.log_softmax(logits, dim=1)).sum(1).mean()
    has = rel.any(dim=0)
    col = relf[:, has]
    t2i = (col / col.sum(dim=0, keepdim=True)).T
    loss_t2i = -(t2i * torch.log_softmax(logits.T[has], dim=1)).sum(1).mean()
    return 0.5 * (loss_i2t + loss_t2i)


def attribute_heads(dim: int, torch: Any, *, background: bool = False) -> Any:
    """``ModuleDict`` of one ``Linear(dim, n_values)`` per :data:`HEAD_KEYS` entry, and one
    for the background when ``background``."""
    keys = (*HEAD_KEYS, "background") if background else HEAD_KEYS
    return torch.nn.ModuleDict(
        {key: torch.nn.Linear(dim, len(ATTRIBUTE_VALUES[key])) for key in keys}
    )


def attribute_loss(
    heads: Any, img: Any, codes: Any, gray: Any, torch: Any, shape_weight: float = 1.0
) -> Any:
    """Mean cross-entropy of the heads on unit image embeddings.

    Args:
        heads: From :func:`attribute_heads` (one term per head it has).
        img: float ``(n, d)`` unit rows.
        codes: int64 ``(n, len(REQUIREMENT_KEYS))`` attribute codes (columns in
            :data:`~luma_rag.training.clip_texts.REQUIREMENT_KEYS` order).
        gray: bool ``(n,)``: the image was shown recoloured (grey levels or a colour
            outside the vocabulary), so its colour head is not trained on it.
        torch: The torch module.
        shape_weight: Factor on the shape head's term (1: every head weighs the same).
    """
    scaled = img * (img.shape[1] ** 0.5)
    terms = []
    for key in heads:
        col = REQUIREMENT_KEYS.index(key)
        rows = ~gray if key == "color" else torch.ones_like(gray)
        if bool(rows.any()):
            logits = heads[key](scaled[rows])
            term = torch.nn.functional.cross_entropy(logits, codes[rows, col])
            terms.append(term * shape_weight if key == "shape" and shape_weight != 1 else term)
    return torch.stack(terms).mean()


def off_vocabulary_colors(n: int, named: Any, gen: Any, torch: Any, margin: float = 0.25) -> Any:
    """``n`` random saturated RGB colours in [0, 1], each at least ``margin`` (Euclidean)
    from every ``named`` colour (float ``(k, 3)`` in [0, 1]) and from the grey axis."""
    out = torch.empty((0, 3))
    while len(out) < n:
        cand = torch.rand((4 * n + 8, 3), generator=gen)
        far = torch.cdist(cand, named).min(dim=1).values >= margin
        chroma = cand.max(dim=1).values - cand.min(dim=1).values >= margin
        out = torch.cat([out, cand[far & chroma]])
    return out[:n]


def recolor(pixels: Any, rows: Any, old: Any, new: Any, mean: Any, std: Any, torch: Any) -> Any:
    """Repaint the shapes of the images ``rows`` from colour ``old`` to colour ``new``.

    A LUMA-Shapes pixel is ``(1 - a) * grey + a * old`` (anti-aliased compositing over a grey
    background), i.e. ``beta * (1, 1, 1) + a * old``: per pixel, ``(beta, a)`` is the least
    squares solution of a 3x2 system, and the repainted pixel ``beta * (1, 1, 1) + a * new``.
    ``old`` must not be grey (the system is then singular).

    Args:
        pixels: float ``(n, 3, H, W)`` normalised with ``mean`` / ``std`` (``(3,)`` each).
        rows: bool ``(n,)``.
        old: float ``(rows.sum(), 3)``: the shapes' colours, RGB in [0, 1].
        new: float ``(rows.sum(), 3)``: the colours to paint, RGB in [0, 1].
        mean: Channel means of the normalisation.
        std: Channel standard deviations.
        torch: The torch module.
    """
    if not bool(rows.any()):
        return pixels
    m, s = mean[None, :, None], std[None, :, None]
    k, _, h, w = pixels[rows].shape
    raw = pixels[rows].reshape(k, 3, h * w) * s + m
    design = torch.stack([old.new_ones(old.shape), old], dim=2)  # (k, 3, 2)
    coef = torch.linalg.pinv(design) @ raw  # (k, 2, HW)
    painted = coef[:, 0:1] + coef[:, 1:2] * new[:, :, None]
    out = pixels.clone()
    out[rows] = ((painted.clamp(0.0, 1.0) - m) / s).reshape(k, 3, h, w)
    return out


def to_gray(pixels: Any, rows: Any, mean: Any, std: Any) -> Any:
    """Replace the images ``rows`` of a normalised batch by their luminance.

    Args:
        pixels: float ``(n, 3, H, W)`` normalised with ``mean`` / ``std`` (``(3,)`` each).
        rows: bool ``(n,)``.
        mean: Channel means of the normalisation.
        std: Channel standard deviations.
    """
    if not bool(rows.any()):
        return pixels
    m, s = mean[None, :, None, None], std[None, :, None, None]
    raw = pixels[rows] * s + m
    luma = 0.299 * raw[:, 0:1] + 0.587 * raw[:, 1:2] + 0.114 * raw[:, 2:3]
    out = pixels.clone()
    out[rows] = (luma.expand_as(raw) - m) / s
    return out


def anchor_loss(txt: Any, teacher: Any) -> Any:
    """Mean ``1 - cos`` between unit text embeddings and the teacher's, ``(n, d)`` each."""
    return (1.0 - (txt * teacher).sum(dim=1)).mean()
