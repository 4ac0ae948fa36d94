"""PDQ, Meta's 256-bit perceptual hash of photos, in numpy: what hash lists of known content
(Meta's Hasher-Matcher-Actioner, ThreatExchange, industry hash-sharing programmes) exchange.

Meta's algorithm (``pdq/cpp/hashing/pdqhashing.cpp``), step for step:

1. luma ``0.299 R + 0.587 G + 0.114 B`` (float32);
2. two passes of a box filter along rows, then columns (Jarosz), each window
   ``(dimension + 127) // 128`` wide, its edges averaged over the samples inside the image;
3. decimation to 64x64, sampling the centre of each cell;
4. quality: the sum of the 64x64 image's absolute neighbour differences, each in whole percent
   of 255 (truncated), divided by 90, at most 100;
5. the 16x16 lowest DCT coefficients but the constant ones (``D A Dᵀ``);
6. bit ``16 i + j`` is set where coefficient ``[i, j]`` exceeds the median (the 128th
   smallest, Torben's), and the hex form is Meta's: bit 255 first.

``hash_of`` is Meta's algorithm on uint8 RGB pixels, bit for bit. The job uses
``hash_of_resized``: the same hash, estimated from the 256x256 resize Yahoo's loader makes anyway,
within a few bits of Meta's on the full pixels (``tests/unit/model/test_pdq.py`` checks both
against reference hashes made by Meta's implementation).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

BITS = 256
HEX_DIGITS = BITS // 4
_SIDE = 64
_KEPT = 16
# the longest axis whose estimator is computed as it is (about 64 MiB and 0.1 s at most)
_LONGEST_ESTIMATED = 8192
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# D: 16 x 64, row i is the DCT-II basis of frequency i + 1 (the constant one is dropped)
_DCT = (np.sqrt(2.0 / _SIDE) * np.cos(
    np.pi / 2.0 / _SIDE * np.outer(np.arange(1, _KEPT + 1), 2 * np.arange(_SIDE) + 1))).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Pdq:
    """A PDQ hash (64 lowercase hex digits, Meta's bit order) and its quality (0-100)."""

    hex: str
    quality: int


def hash_of(rgb: np.ndarray) -> Pdq:
    """The PDQ hash of uint8 RGB pixels ``[height, width, 3]``, exactly as Meta computes it."""
    return hash_of_luma(np.asarray(rgb, dtype=np.float32) @ _LUMA)


def hash_of_resized(resized: np.ndarray, decoded: tuple[int, int], full: tuple[int, int]) -> Pdq:
    """The PDQ hash of an image, within a few bits of Meta's on its full pixels, from the
    uint8 RGB ``resized`` ``[n, m, 3]`` that Pillow's bilinear ``resize`` made of it (Yahoo's
    256x256, which the loader makes anyway: hashing it costs a fraction of a millisecond where
    the full pixels of a 12-megapixel photo cost tens).

    ``full``: the image's ``(width, height)``; ``decoded``: that of the pixels that were resized,
    smaller when the decoder averaged blocks of them (a JPEG decoded at reduced scale). The
    64x64 samples Meta's filter would take from the full pixels are estimated from the resized
    ones by least squares (:func:`_estimator`)."""
    rows, columns = resized.shape[:2]
    luma = np.asarray(resized, dtype=np.float32) @ _LUMA
    down = _estimator(full[1], decoded[1], rows)
    across = _estimator(full[0], decoded[0], columns)
    return _hash(down @ luma @ across.T)


def hash_of_luma(luma: np.ndarray) -> Pdq:
    """The PDQ hash of float luma ``[height, width]``, values 0-255."""
    rows, cols = luma.shape
    if (rows, cols) == (_SIDE, _SIDE):  # Meta's hasher takes a 64x64 image as it is
        return _hash(np.asarray(luma, dtype=np.float32))
    return _hash(_downsampling(rows) @ np.asarray(luma, dtype=np.float32) @ _downsampling(cols).T)


def _hash(small: np.ndarray) -> Pdq:
    """The hash of the 64x64 downsampled luma."""
    coefficients = (_DCT @ small @ _DCT.T).ravel()
    median = np.partition(coefficients, BITS // 2 - 1)[BITS // 2 - 1]
    return Pdq(_hex(coefficients > median), _quality(small))


@functools.lru_cache(maxsize=8)
def _downsampling(length: int) -> np.ndarray:
    """``[64, length]`` float32: Meta's two box-filter passes along an axis of ``length``
    samples followed by its decimation (the sample at each cell's centre), as one linear map.
    The passes along rows and along columns act on separate axes, so they commute, and the 2-D
    filter is this map applied on each side.

    Row ``r`` is ``e_c B B`` for the centre ``c`` of cell ``r`` and ``B`` Meta's ``box1DFloat``
    as a matrix: output ``o`` of a pass is the mean of the inputs ``o - before .. o + after``
    inside the axis, ``count(o)`` of them. So the row is, at input ``i``, the sum over the
    outputs ``o`` of the first pass around ``c`` whose window holds ``i`` of
    ``1 / (count(c) count(o))``: nonzero on ``c - 2 before .. c + 2 after`` only."""
    window = (length + 2 * _SIDE - 1) // (2 * _SIDE)
    centres = _centres(length)
    weights = np.zeros((_SIDE, length), dtype=np.float32)
    if window <= 1:
        weights[np.arange(_SIDE), centres] = 1.0
        return weights
    half = (window + 2) // 2
    before, after = window - half, half - 1

    def count(outputs):
        return np.minimum(outputs + after, length - 1) + 1 - np.maximum(outputs - before, 0)

    first = centres[:, None] + np.arange(-before, after + 1)  # [64, window]: first-pass outputs
    first_valid = (first >= 0) & (first < length)
    share = np.where(first_valid, 1.0 / (count(centres)[:, None] * count(first)), 0.0)  # 1 / (count(c) count(o))
    inputs = centres[:, None] + np.arange(-2 * before, 2 * after + 1)  # [64, 2 window - 1]
    # input k of the row (c - 2 before + k) lies in the windows of first-pass outputs j (c - before + j)
    # for j from k - window + 1 to k: a running sum of the shares, linear in the window's width
    summed = np.concatenate([np.zeros((_SIDE, 1)), np.cumsum(share, axis=1)], axis=1)
    k = np.arange(2 * window - 1)
    values = summed[:, np.minimum(k, window - 1) + 1] - summed[:, np.maximum(k - window + 1, 0)]
    inside = (inputs >= 0) & (inputs < length)
    weights[np.nonzero(inside)[0], inputs[inside]] = values[inside]
    return weights


@functools.lru_cache(maxsize=256)
def _estimator(full: int, decoded: int, resized: int) -> np.ndarray:
    """``[64, resized]`` float32 ``E`` with ``E @ r ≈ W @ x`` along one axis: ``x`` has ``full``
    samples, ``W`` is Meta's filter and decimation (:func:`_downsampling`), and ``r = K D x`` is
    what the loader made of ``x``: ``D`` the decoder's ``decoded`` samples (:func:`_block_scaling`,
    the identity when nothing was scaled), ``K`` Pillow's bilinear resize to ``resized``
    (:func:`_bilinear`). ``E = W Aᵀ (A Aᵀ + λI)⁻¹`` with ``A = K D``, the least-squares estimate,
    its ridge ``λ`` 10⁻⁴ of ``A Aᵀ``'s largest eigenvalue (bounded by its largest row sum).
    1 to 6 ms per new axis length; 64 KiB kept for each of the last 256.

    An axis longer than ``_LONGEST_ESTIMATED`` samples is estimated as one of that length:
    Meta's filter and the bilinear resize both scale with the axis, so the estimate hardly
    changes (``tests/unit/model/test_pdq.py``), while its matrices would grow with the length
    (a 1,000,000 x 1 picture of 3 KB asked for gigabytes)."""
    if full > _LONGEST_ESTIMATED:
        return _estimator(_LONGEST_ESTIMATED, _LONGEST_ESTIMATED, resized)
    weights = _downsampling(full)
    band = _bilinear(decoded, resized)
    resize = _dense(*band, decoded)
    if decoded == full:
        gram = _banded_gram(*band)
    else:
        weights, blocks = _block_scaling(weights, full, decoded)
        gram = ((resize @ blocks) @ resize.T).astype(np.float64)
    gram[np.diag_indices_from(gram)] += 1e-4 * np.abs(gram).sum(axis=1).max()
    return np.linalg.solve(gram, (weights @ resize.T).astype(np.float64).T).T.astype(np.float32)


def _block_scaling(weights: np.ndarray, full: int, decoded: int) -> tuple[np.ndarray, np.ndarray]:
    """``(W Dᵀ, D Dᵀ)`` for ``D``: ``[decoded, full]``, the decoding of an axis of ``full`` samples
    as ``decoded``. Fewer samples are a JPEG decoded at reduced scale (Pillow's ``draft``):
    libjpeg keeps each 8-sample block's lowest ``m`` DCT coefficients (``m`` 1, 2 or 4) and
    transforms them back at size ``m`` (``T``), the edge block padded with its last sample. Any
    other size is taken as block averages, ``m = 1``, blocks of ``full / decoded``."""
    kept = next((m for m in (4, 2, 1) if -(-full * m // 8) == decoded), None)
    if kept is None:  # block averages: W Dᵀ sums W over each block, D Dᵀ is diagonal
        to_decoded = np.minimum((np.arange(full) + 0.5) * decoded / full, decoded - 1).astype(np.int64)
        sizes = np.bincount(to_decoded, minlength=decoded).astype(np.float32)
        summed = np.zeros((weights.shape[0], decoded), dtype=np.float32)
        np.add.at(summed.T, to_decoded, weights.T)
        return summed / sizes, np.diag(1.0 / sizes)
    count = -(-full // 8)
    source = np.minimum(np.arange(count * 8), full - 1)  # the edge block repeats its last sample
    scaling = (np.sqrt(kept / 8) * _dct_basis(kept).T @ _dct_basis(8)[:kept]).astype(np.float32)  # T: [m, 8]
    projected = (weights[:, source].reshape(weights.shape[0], count, 8) @ scaling.T).reshape(weights.shape[0], -1)
    blocks = np.eye(count * kept, dtype=np.float32) * np.float32(kept / 8)  # T Tᵀ for whole blocks
    last = source[-8:]
    same = (last[:, None] == last[None, :]).astype(np.float32)
    blocks[-kept:, -kept:] = scaling @ same @ scaling.T
    return projected[:, :decoded], blocks[:decoded, :decoded]


def _dct_basis(size: int) -> np.ndarray:
    """The orthonormal DCT-II matrix ``[frequency, sample]``."""
    basis = np.cos(np.pi / size * np.outer(np.arange(size), np.arange(size) + 0.5)) * np.sqrt(2.0 / size)
    basis[0] /= np.sqrt(2.0)
    return basis


def _bilinear(length: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's BILINEAR resize of an axis of ``length`` samples to ``size`` (``ImagingResample``'s
    coefficients: a triangle as wide as the scale when reducing, normalised over the samples
    inside the axis), banded: ``(first, weights)``, output ``j`` being ``weights[j] @
    x[first[j]:first[j] + width]``."""
    if length == size:
        return np.arange(size), np.ones((size, 1))
    scale = length / size
    support = max(scale, 1.0)
    centres = (np.arange(size) + 0.5) * scale
    first = np.maximum((centres - support + 0.5).astype(np.int64), 0)
    last = np.minimum((centres + support + 0.5).astype(np.int64), length)
    inputs = first[:, None] + np.arange(int((last - first).max()))  # each output's inputs
    weights = np.maximum(0.0, 1.0 - np.abs((inputs + 0.5 - centres[:, None]) / support))
    weights[inputs >= last[:, None]] = 0.0
    return first, weights / weights.sum(axis=1, keepdims=True)


def _dense(first: np.ndarray, weights: np.ndarray, length: int) -> np.ndarray:
    """A banded ``(first, weights)`` map as a ``[len(first), length]`` float32 matrix."""
    matrix = np.zeros((len(first), length), dtype=np.float32)
    inputs = first[:, None] + np.arange(weights.shape[1])
    inside = (inputs < length) & (weights != 0)
    matrix[np.nonzero(inside)[0], inputs[inside]] = weights[inside]
    return matrix


def _banded_gram(first: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``K Kᵀ`` of a banded ``K`` (``_bilinear``'s), from its bands: rows ``j`` and ``j + d``
    overlap only for the few ``d`` whose bands meet."""
    size, width = weights.shape
    gram = np.zeros((size, size))
    padded = np.concatenate([weights, np.zeros((size, width))], axis=1)
    for d in range(size):
        shift = first[d:] - first[:size - d]  # where row j + d's band starts within row j's
        if shift.min() >= width:
            break
        columns = np.arange(width)[None, :] - shift[:, None]  # row j + d's sample at row j's k
        valid = (columns >= 0) & (columns < width)
        other = np.take_along_axis(padded[d:], np.where(valid, columns, width), axis=1)
        products = (weights[:size - d] * other).sum(axis=1)
        gram[np.arange(size - d), np.arange(d, size)] = products
        gram[np.arange(d, size), np.arange(size - d)] = products
    return gram


def _centres(length: int) -> np.ndarray:
    return ((np.arange(_SIDE) + 0.5) * length / _SIDE).astype(np.int64)


def _quality(small: np.ndarray) -> int:
    down = np.trunc((small[:-1, :] - small[1:, :]) * np.float32(100) / np.float32(255))
    across = np.trunc((small[:, :-1] - small[:, 1:]) * np.float32(100) / np.float32(255))
    total = int(np.abs(down).sum() + np.abs(across).sum())
    return min(100, total // 90)


def _hex(bits: np.ndarray) -> str:
    """Bits in PDQ's order (bit ``k`` of 256) -> Meta's hex form, bit 255 first."""
    return np.packbits(bits[::-1]).tobytes().hex()


def distance(first: str, second: str) -> int:
    """The Hamming distance of two hashes in hex."""
    return (int(first, 16) ^ int(second, 16)).bit_count()
