"""Invisible, keyed watermark in the luma channel (DWT-DCT-SVD with dithered quantisation).

Scheme (all of it at a fixed *canonical grid*, so the mark survives resizing):

1. The luma plane is resampled to `CANONICAL_SIZE` squared (a square avatar keeps its aspect).
2. One level of a Haar DWT; its LL band is cut into 4x4 blocks (4096 blocks at 512 px).
3. Each block is DCT-transformed; the largest singular value of that 4x4 DCT block is
   quantised onto one of two interleaved lattices (dither modulation, step `STRENGTH`),
   which carries one bit. A per-instance secret key picks, for every block, which payload
   bit it carries, a whitening chip XORed onto that bit, and the lattice offset (dither).
   Without the key the lattices are unknown, so another instance's marks read as noise.
4. The change is taken back to pixels at the canonical size and the difference is resampled
   to the image's own size and added to R, G and B equally (luma only; chroma untouched).

Decoding resamples whatever arrives (any size, re-encoded) to the canonical grid and
averages the soft decisions of each bit's 64 blocks. The payload is 48 bits plus a
CRC-16; a mark counts as found only when the CRC matches *and* the mean soft confidence
clears `CONFIDENCE_THRESHOLD` (unmarked images sit near 0.07; see docs/provenance.md).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from bot.errors import AvatarbotError

PAYLOAD_BYTES = 6
"""The mark id the watermark carries: 48 bits."""
CRC_BITS = 16
PAYLOAD_BITS = PAYLOAD_BYTES * 8 + CRC_BITS
CANONICAL_SIZE = 512
BLOCK = 4
STRENGTH = 40.0
"""Quantisation step on the largest singular value; sets the invisibility/robustness trade."""
CONFIDENCE_THRESHOLD = 0.15
"""Mean |soft bit| needed (with a CRC match) to call a mark found."""
REFINE_PASSES = 2
_CLIP_MARGIN = 6.0
KEY_BYTES = 32

Float = npt.NDArray[np.float64]

_LUMA = np.array([0.299, 0.587, 0.114])


class WatermarkKeyError(AvatarbotError):
    """The watermark key file is unreadable or malformed; the operator must fix or remove it."""


@dataclass(frozen=True)
class WatermarkKey:
    """A per-instance secret that decides where and how the mark is written."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ValueError("a watermark key needs at least 16 bytes of secret")

    @classmethod
    def generate(cls) -> WatermarkKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    def __repr__(self) -> str:
        return f"WatermarkKey(fingerprint={self.fingerprint})"

    @property
    def fingerprint(self) -> str:
        """A short public name for the key (safe to log)."""
        return hashlib.sha256(b"avatarbot-wm-fp" + self.secret).hexdigest()[:12]


def load_or_create_watermark_key(data_dir: Path) -> WatermarkKey:
    """Read `<data_dir>/watermark.key` (hex), creating it (mode 0600) on first run."""
    path = data_dir / "watermark.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_bytes(KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: read theirs below
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secret.hex() + "\n")
    try:
        return WatermarkKey(bytes.fromhex(path.read_text().strip()))
    except (OSError, ValueError) as exc:
        raise WatermarkKeyError(f"cannot use watermark key {path}: {exc}") from exc


@dataclass(frozen=True)
class Detection:
    found: bool
    payload: bytes | None
    """The 6-byte payload when found, else None."""
    confidence: float
    """Mean |soft decision| over the payload bits: ~0.07 unmarked, ~1.0 pristine."""
    bit_agreement: float
    """Share of the individual blocks that agree with the decoded bits (0.5 = noise)."""


@dataclass(frozen=True)
class _Layout:
    bit_of_block: npt.NDArray[np.intp]
    chips: npt.NDArray[np.int8]
    dither: Float


def _layout(key: WatermarkKey) -> _Layout:
    n_blocks = (CANONICAL_SIZE // 2 // BLOCK) ** 2
    seed = int.from_bytes(hashlib.sha256(b"avatarbot-wm-layout" + key.secret).digest(), "big")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_blocks)
    bit_of_block = np.empty(n_blocks, dtype=np.intp)
    bit_of_block[perm] = np.arange(n_blocks) % PAYLOAD_BITS
    chips = rng.integers(0, 2, n_blocks).astype(np.int8)
    dither = rng.random(n_blocks)
    return _Layout(bit_of_block, chips, dither)


def _dct_matrix(n: int) -> Float:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m: Float = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix(BLOCK)


def _crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _to_bits(payload: bytes) -> npt.NDArray[np.int8]:
    word = payload + _crc16(payload).to_bytes(2, "big")
    return np.unpackbits(np.frombuffer(word, dtype=np.uint8)).astype(np.int8)


def _resize(plane: Float, size: tuple[int, int]) -> Float:
    """Resample a float plane to (width, height) with Pillow's antialiased bicubic."""
    if plane.shape[1] == size[0] and plane.shape[0] == size[1]:
        return plane
    img = Image.fromarray(plane.astype(np.float32), mode="F")
    return np.asarray(img.resize(size, Image.Resampling.BICUBIC), dtype=np.float64)


def _haar_ll(plane: Float) -> Float:
    """The LL band of a one-level orthonormal Haar DWT (what `pywt.dwt2(x, "haar")[0]` gives)."""
    h, w = plane.shape
    out: Float = plane.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3)) / 2.0
    return out


def _haar_ll_inverse(ll: Float) -> Float:
    """Pixels for an LL band with zero detail bands (`pywt.idwt2((ll, zeros), "haar")`)."""
    out: Float = np.repeat(np.repeat(ll / 2.0, 2, axis=0), 2, axis=1)
    return out


def _blocks(plane: Float, size: int = BLOCK) -> Float:
    n = plane.shape[0] // size
    return plane.reshape(n, size, n, size).transpose(0, 2, 1, 3).reshape(-1, size, size)


def _unblocks(blocks: Float, side: int) -> Float:
    n = side // BLOCK
    return blocks.reshape(n, n, BLOCK, BLOCK).transpose(0, 2, 1, 3).reshape(side, side)


def _top_singular(mats: Float) -> tuple[Float, Float, Float]:
    """Largest singular value and its vectors for a stack of small matrices.

    Power iteration from the DC direction converges in a few steps on image blocks (the
    DC term dominates); the rare blocks that have not converged get an exact SVD.
    """
    gram = np.swapaxes(mats, 1, 2) @ mats
    v = np.zeros(mats.shape[:2])
    v[:, 0] = 1.0
    previous = np.zeros(mats.shape[0])
    for _ in range(8):
        v = np.einsum("nij,nj->ni", gram, v)
        norm = np.linalg.norm(v, axis=1)
        v /= np.where(norm > 0, norm, 1.0)[:, None]
        rayleigh = np.einsum("ni,nij,nj->n", v, gram, v)
        done = np.abs(rayleigh - previous) <= 1e-9 * np.maximum(rayleigh, 1.0)
        previous = rayleigh
    bv = np.einsum("nij,nj->ni", mats, v)
    s = np.linalg.norm(bv, axis=1)
    u = bv / np.where(s > 0, s, 1.0)[:, None]
    slow = np.flatnonzero(~done | (s == 0))
    if slow.size:
        us, ss, vts = np.linalg.svd(mats[slow])
        u[slow], s[slow], v[slow] = us[:, :, 0], ss[:, 0], vts[:, 0, :]
    return u, s, v


def _analyse(canon: Float) -> tuple[Float, Float, Float]:
    dct = _DCT @ _blocks(_haar_ll(canon)) @ _DCT.T
    return _top_singular(dct)


def _embed_canonical(canon: Float, bits: npt.NDArray[np.int8], layout: _Layout) -> Float:
    """Return the canonical-size luma change that writes `bits`."""
    u0, s0, v0 = _analyse(canon)
    wanted = (bits[layout.bit_of_block] ^ layout.chips).astype(np.float64)
    offset = layout.dither + wanted / 2.0
    below = STRENGTH * (np.floor(s0 / STRENGTH - offset) + offset)
    above = below + STRENGTH
    target = np.where(s0 - below <= above - s0, below, above)
    # A raise that would push a block past 255 (or a cut below 0) is clipped away and lost:
    # such blocks go to the other lattice point instead. A change of d on the singular value
    # moves a DC-like block's pixels by about d / 8; `_CLIP_MARGIN` errs on the safe side.
    pixels = _blocks(canon, BLOCK * 2)
    raise_clips = pixels.max(axis=(1, 2)) + (above - s0) / _CLIP_MARGIN > 255
    cut_clips = pixels.min(axis=(1, 2)) - (s0 - below) / _CLIP_MARGIN < 0
    target = np.where((target == above) & raise_clips & ~cut_clips, below, target)
    target = np.where((target == below) & cut_clips & ~raise_clips, above, target)
    target = np.where(target < 0, above, target)
    change = (target - s0)[:, None, None] * (u0[:, :, None] @ v0[:, None, :])
    ll_change = _unblocks(_DCT.T @ change @ _DCT, canon.shape[0] // 2)
    return _haar_ll_inverse(ll_change)


def _luma(rgb: Float) -> Float:
    out: Float = rgb @ _LUMA
    return out


def embed(image: Image.Image, payload: bytes, key: WatermarkKey) -> Image.Image:
    """Return a copy of `image` (RGB, or RGBA with alpha kept) carrying `payload` (6 bytes)."""
    if len(payload) != PAYLOAD_BYTES:
        raise ValueError(f"watermark payload must be {PAYLOAD_BYTES} bytes, got {len(payload)}")
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else None
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    height, width = rgb.shape[:2]
    bits = _to_bits(payload)
    layout = _layout(key)
    canonical = (CANONICAL_SIZE, CANONICAL_SIZE)
    marked = rgb
    for _ in range(REFINE_PASSES):
        canon = _resize(_luma(marked), canonical)
        delta = _resize(_embed_canonical(canon, bits, layout), (width, height))
        marked = np.clip(np.round(marked + delta[:, :, None]), 0, 255)
    out = Image.fromarray(marked.astype(np.uint8), mode="RGB")
    if alpha is not None:
        out.putalpha(alpha)
    return out


def _soft_bits(image: Image.Image, layout: _Layout) -> tuple[Float, Float]:
    """Per-block soft decisions (+1 means bit 0) and their per-bit means."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    canon = _resize(_luma(rgb), (CANONICAL_SIZE, CANONICAL_SIZE))
    _, s0, _ = _analyse(canon)
    phase = np.mod(s0 / STRENGTH - layout.dither, 1.0)
    soft_embedded = np.cos(2 * np.pi * phase)  # +1: lattice 0, -1: lattice 1
    soft: Float = soft_embedded * (1 - 2 * layout.chips)  # undo the whitening chip
    sums = np.bincount(layout.bit_of_block, weights=soft, minlength=PAYLOAD_BITS)
    counts = np.bincount(layout.bit_of_block, minlength=PAYLOAD_BITS)
    per_bit: Float = sums / counts
    return soft, per_bit


def extract(image: Image.Image, key: WatermarkKey) -> Detection:
    """Look for this key's mark in `image`, whatever its size or encoding history."""
    layout = _layout(key)
    soft, per_bit = _soft_bits(image, layout)
    bits = (per_bit < 0).astype(np.uint8)
    decided = np.where(bits[layout.bit_of_block] == 1, -soft, soft)
    agreement = float(np.mean(decided > 0))
    confidence = float(np.mean(np.abs(per_bit)))
    word = np.packbits(bits).tobytes()
    payload, crc = word[:PAYLOAD_BYTES], int.from_bytes(word[PAYLOAD_BYTES:], "big")
    found = crc == _crc16(payload) and confidence >= CONFIDENCE_THRESHOLD
    return Detection(
        found=found,
        payload=payload if found else None,
        confidence=confidence,
        bit_agreement=agreement,
    )


def bit_accuracy(image: Image.Image, payload: bytes, key: WatermarkKey) -> float:
    """Share of the 64 transmitted bits (payload + CRC) read back correctly (for benchmarks)."""
    _, per_bit = _soft_bits(image, _layout(key))
    bits = (per_bit < 0).astype(np.int8)
    return float(np.mean(bits == _to_bits(payload)))
