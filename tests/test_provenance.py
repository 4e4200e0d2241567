"""Labelling avatars as AI-made (watermark + XMP + C2PA) and verifying them."""

from __future__ import annotations

import io
import os
import zlib
from datetime import UTC, datetime
from pathlib import Path

import c2pa
import pytest
from PIL import Image

import bot
from provenance.labeller import (
    C2paStatus,
    LabelInfo,
    Labeller,
    NotAnImageError,
    SigningIdentity,
    SigningIdentityError,
    load_or_create_watermark_key,
    new_mark_id,
)
from tests.unmarked_images import ASTRONAUT

CREATED = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("instance")


@pytest.fixture(scope="module")
def labeller(data_dir: Path) -> Labeller:
    identity = SigningIdentity.load_or_create(data_dir)
    return Labeller(identity, load_or_create_watermark_key(data_dir))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Labeller:
    """Another avatarbot instance: its own certificate chain and watermark key."""
    other = tmp_path_factory.mktemp("other-instance")
    return Labeller(SigningIdentity.load_or_create(other), load_or_create_watermark_key(other))


@pytest.fixture(scope="module")
def info() -> LabelInfo:
    return LabelInfo(mark_id=new_mark_id(), style_id="watercolor", created_at=CREATED)


@pytest.fixture(scope="module")
def avatar() -> Image.Image:
    return Image.open(ASTRONAUT).convert("RGB")


@pytest.fixture(scope="module")
def png(labeller: Labeller, avatar: Image.Image, info: LabelInfo) -> bytes:
    return labeller.label(avatar, info, "png")


@pytest.fixture(scope="module")
def jpg(labeller: Labeller, avatar: Image.Image, info: LabelInfo) -> bytes:
    return labeller.label(avatar, info, "jpeg")


def resave(data: bytes, fmt: str, **options: int) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(out, fmt, **options)
    return out.getvalue()


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start of chunk data, length) for every chunk of a PNG."""
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append((data[pos + 4 : pos + 8], pos + 8, length))
        pos += 12 + length
    return chunks


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_labelled_avatar_verifies_as_ours_intact_and_ai_made(
    labeller: Labeller, png: bytes, jpg: bytes, info: LabelInfo, fmt: str
) -> None:
    verdict = labeller.verify(png if fmt == "png" else jpg)
    assert verdict.c2pa_status is C2paStatus.VALID
    assert verdict.c2pa_failures == ()
    assert verdict.signed_by_us
    assert verdict.ai_generated
    assert verdict.metadata_ai_label
    assert verdict.ours
    assert verdict.intact
    assert verdict.claim is not None
    assert verdict.claim.style_id == "watercolor"
    assert verdict.claim.mark_id == info.mark_id
    assert verdict.claim.created_at == CREATED
    assert verdict.claim.generator == "avatarbot"
    assert verdict.watermark.found
    assert verdict.watermark_checked
    assert verdict.watermark_mark_id == info.mark_id == verdict.mark_id


def test_png_carries_xmp_and_text_chunks(png: bytes) -> None:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.info["AI-generated"] == "true"
    assert image.info["Software"] == f"avatarbot {bot.__version__}"
    assert image.info["DigitalSourceType"].endswith("/trainedAlgorithmicMedia")
    xmp = image.info["XML:com.adobe.xmp"]
    assert "<Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/" in xmp
    assert f"<xmp:CreatorTool>avatarbot {bot.__version__}</xmp:CreatorTool>" in xmp
    assert b"caBX" in [kind for kind, _, _ in png_chunks(png)]


def test_jpeg_carries_xmp(jpg: bytes) -> None:
    image = Image.open(io.BytesIO(jpg))
    assert image.format == "JPEG"
    assert b"trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>" in image.info["xmp"]


def test_manifest_holds_no_personal_data_and_no_thumbnail(png: bytes, info: LabelInfo) -> None:
    with c2pa.Reader("image/png", io.BytesIO(png)) as reader:
        manifest = reader.get_active_manifest()
    assert manifest is not None
    assert "thumbnail" not in manifest
    assertions = {a["label"]: a["data"] for a in manifest["assertions"]}
    assert set(assertions) == {"c2pa.actions.v2", "org.avatarbot.avatar"}
    assert assertions["org.avatarbot.avatar"] == {
        "style": "watercolor",
        "mark_id": info.mark_id,
        "created": "2026-05-04T03:02:01Z",
    }
    (created,) = assertions["c2pa.actions.v2"]["actions"]
    assert created["action"] == "c2pa.created"
    assert created["softwareAgent"] == {"name": "avatarbot", "version": bot.__version__}


def test_one_flipped_byte_in_png_image_data_is_altered(labeller: Labeller, png: bytes) -> None:
    _, start, length = next(c for c in png_chunks(png) if c[0] == b"IDAT")
    tampered = bytearray(png)
    tampered[start + length // 2] ^= 0x01
    verdict = labeller.verify(bytes(tampered))
    assert verdict.c2pa_status is C2paStatus.ALTERED
    assert "assertion.dataHash.mismatch" in verdict.c2pa_failures
    assert verdict.signed_by_us  # our signature over the manifest still checks out...
    assert not verdict.intact  # ...but the pixels are not the ones we signed


def test_edited_pixels_under_a_transplanted_manifest_are_altered(
    labeller: Labeller, png: bytes, info: LabelInfo
) -> None:
    """A forger edits the avatar and puts our original manifest chunk back in."""
    kind, start, length = next(c for c in png_chunks(png) if c[0] == b"caBX")
    manifest_chunk = png[start - 8 : start + length + 4]
    edited = Image.open(io.BytesIO(png)).convert("RGB")
    edited.paste((255, 0, 0), (10, 10, 60, 60))
    clean = io.BytesIO()
    edited.save(clean, "PNG")
    raw = clean.getvalue()
    ihdr_end = 8 + 12 + 13
    forged = raw[:ihdr_end] + manifest_chunk + raw[ihdr_end:]
    assert zlib.crc32(manifest_chunk[4:-4]) == int.from_bytes(manifest_chunk[-4:], "big")
    verdict = labeller.verify(forged)
    assert kind == b"caBX"
    assert verdict.c2pa_status is C2paStatus.ALTERED
    assert not verdict.intact
    # The watermark is still there, so it is still recognisably ours.
    assert verdict.watermark_mark_id == info.mark_id


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_pillow_resave_strips_c2pa_but_watermark_remains(
    labeller: Labeller, png: bytes, info: LabelInfo, fmt: str
) -> None:
    verdict = labeller.verify(resave(png, fmt))
    assert verdict.c2pa_status is C2paStatus.ABSENT
    assert not verdict.signed_by_us
    assert not verdict.ai_generated
    assert verdict.claim is None
    assert verdict.watermark.found
    assert verdict.watermark_mark_id == info.mark_id == verdict.mark_id
    assert verdict.ours
    assert not verdict.intact


def test_chat_app_jpeg_q85_and_resize_to_1280_keeps_watermark(
    labeller: Labeller, jpg: bytes, info: LabelInfo
) -> None:
    image = Image.open(io.BytesIO(jpg)).resize((1280, 1280), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    verdict = labeller.verify(out.getvalue())
    assert verdict.c2pa_status is C2paStatus.ABSENT
    assert verdict.watermark_mark_id == info.mark_id


def test_another_instance_sees_a_valid_signature_that_is_not_its_own(
    stranger: Labeller, png: bytes
) -> None:
    verdict = stranger.verify(png)
    assert verdict.c2pa_status is C2paStatus.VALID  # hashes and signature are fine...
    assert "signingCredential.untrusted" in verdict.c2pa_failures  # ...from an unknown signer
    assert verdict.ai_generated
    assert not verdict.signed_by_us
    assert not verdict.watermark.found
    assert not verdict.ours
    assert not verdict.intact


def test_unlabelled_image_is_absent_and_not_ours(labeller: Labeller, avatar: Image.Image) -> None:
    out = io.BytesIO()
    avatar.save(out, "PNG")
    verdict = labeller.verify(out.getvalue())
    assert verdict.c2pa_status is C2paStatus.ABSENT
    assert not verdict.ours
    assert not verdict.ai_generated
    assert not verdict.metadata_ai_label
    assert verdict.mark_id is None


@pytest.mark.parametrize(
    "data",
    [b"", b"definitely not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a" + b"\0" * 64],
)
def test_not_an_image_is_a_typed_error(labeller: Labeller, data: bytes) -> None:
    with pytest.raises(NotAnImageError) as caught:
        labeller.verify(data)
    assert "PNG, JPEG or WebP" in caught.value.user_message


def test_gif_is_refused_even_when_valid(labeller: Labeller) -> None:
    out = io.BytesIO()
    Image.new("RGB", (16, 16)).save(out, "GIF")
    with pytest.raises(NotAnImageError):
        labeller.verify(out.getvalue())


def test_identity_is_created_once_and_reused(tmp_path: Path) -> None:
    first = SigningIdentity.load_or_create(tmp_path)
    second = SigningIdentity.load_or_create(tmp_path)
    assert first.certificate == second.certificate
    assert first.private_key_pem == second.private_key_pem
    for name in ("signer.key", "root.key"):
        assert os.stat(tmp_path / "c2pa" / name).st_mode & 0o777 == 0o600
    assert len(first.certificates) == 2
    assert first.certificate.issuer == first.certificates[1].subject
    assert "PRIVATE" not in repr(first)


def test_from_files_accepts_an_operator_chain_and_rejects_a_wrong_key(
    tmp_path: Path, data_dir: Path
) -> None:
    mine = data_dir / "c2pa"
    identity = SigningIdentity.from_files(mine / "chain.pem", mine / "signer.key")
    assert identity.certificate == SigningIdentity.load_or_create(data_dir).certificate
    SigningIdentity.load_or_create(tmp_path)
    with pytest.raises(SigningIdentityError, match="does not match"):
        SigningIdentity.from_files(mine / "chain.pem", tmp_path / "c2pa" / "signer.key")
    with pytest.raises(SigningIdentityError):
        SigningIdentity.from_files(tmp_path / "missing.pem", mine / "signer.key")


def test_label_info_rejects_bad_mark_ids_and_naive_times() -> None:
    with pytest.raises(ValueError, match="hex"):
        LabelInfo(mark_id="user-12345", style_id="oil", created_at=CREATED)
    with pytest.raises(ValueError, match="timezone"):
        LabelInfo(mark_id=new_mark_id(), style_id="oil", created_at=datetime(2026, 1, 1))
