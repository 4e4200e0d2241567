"""Likeness: the score, its place in the job result, the real dlib embedder on photos of
four different people, and the catalog's per-style minimum."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot import i18n, job_texts
from bot.jobs import JobResult, ResultImage
from bot.likeness import SAME_PERSON_DISTANCE, Likeness, score_of
from bot.styles import StyleCatalog, StyleCatalogError
from generation.backends.cpu_engine import CpuStyleEngine
from generation.face_identity import DlibFaceIdentity, FaceIdentityUnavailableError, distance
from tests.people import PEOPLE, selfie_image


@pytest.fixture(scope="module")
def identity() -> DlibFaceIdentity:
    return DlibFaceIdentity(max_parallel=2)


def rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


# --------------------------------------------------------------------------- the score


def test_score_maps_distance_onto_0_to_1_with_same_person_at_one_half() -> None:
    assert score_of(0.0) == 1.0
    assert score_of(SAME_PERSON_DISTANCE) == pytest.approx(0.5)
    assert score_of(0.3) == pytest.approx(0.75)
    assert score_of(1.2) == 0.0
    assert score_of(2.0) == 0.0  # clamped
    assert Likeness(0.59).same_person
    assert not Likeness(0.6).same_person
    assert Likeness(0.336).percent == "72%"
    none = Likeness(None)
    assert (none.score, none.same_person, none.percent) == (None, False, "no face")
    with pytest.raises(ValueError, match="distance"):
        Likeness(float("nan"))
    with pytest.raises(ValueError, match="distance"):
        Likeness(-0.1)


def test_result_header_carries_likeness_and_tries_and_reads_old_headers() -> None:
    def image(seed: int, likeness: Likeness | None, tries: int = 1) -> ResultImage:
        return ResultImage(b"png", "image/png", 8, 8, seed, likeness=likeness, tries=tries)

    result = JobResult(
        job_id="j1",
        style_id="sketch",
        images=(image(1, Likeness(0.42), tries=3), image(2, Likeness(None)), image(3, None)),
        backend="cpu",
        elapsed_s=0.5,
    )
    fields = result.to_fields()
    header = json.loads(str(fields["header"]))
    assert header["images"][0]["likeness"] == {"distance": 0.42, "score": 0.65}
    assert header["images"][0]["tries"] == 3
    assert header["images"][1]["likeness"] == {"distance": None, "score": None}
    assert "likeness" not in header["images"][2]  # not measured: absent
    assert "tries" not in header["images"][1]
    raw = {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}
    assert JobResult.from_fields(raw) == result

    # A result written before likeness existed still reads: not measured, one try.
    old = {
        b"header": json.dumps({
            "job_id": "j0", "style_id": "oil", "backend": "cpu", "elapsed_s": 0.1,
            "images": [{"mime": "image/png", "width": 8, "height": 8, "seed": 5}],
        }).encode(),
        b"image:0": b"png",
    }  # fmt: skip
    [read] = JobResult.from_fields(old).images
    assert (read.likeness, read.tries) == (None, 1)


def test_caption_shows_likeness_only_when_given() -> None:
    plain = job_texts.avatar_caption("✏️ Pencil sketch", 1)
    assert "Likeness" not in plain
    scores = [Likeness(0.336), Likeness(None)]
    shown = job_texts.avatar_caption("✏️ Pencil sketch", 2, likeness=scores)
    assert shown.startswith(job_texts.avatar_caption("✏️ Pencil sketch", 2) + "\n")
    assert shown.endswith("Likeness to your selfie: 72%, no face")
    unmeasured = job_texts.avatar_caption("✏️ Pencil sketch", 2, likeness=[None, None])
    assert unmeasured == job_texts.avatar_caption("✏️ Pencil sketch", 2)


def test_no_face_is_said_in_the_users_language() -> None:
    scores = [Likeness(0.336), Likeness(None)]
    with i18n.use("de"):
        no_face = job_texts.likeness_score(Likeness(None))
        caption = job_texts.avatar_caption("✏️ Bleistift", 2, likeness=scores)
        seventy_two = job_texts.likeness_score(Likeness(0.336))
    assert no_face not in ("", "no face")
    assert seventy_two == "72 %"  # as German writes it
    assert caption.endswith(f": {seventy_two}, {no_face}")
    assert "Likeness" not in caption


# --------------------------------------------------------------------------- the embedder


def test_different_people_are_apart_and_a_person_matches_their_own_photo(
    identity: DlibFaceIdentity,
) -> None:
    references = {}
    for name in PEOPLE:
        found = identity.identify(rgb(selfie_image(name)))
        assert found is not None, name
        assert found.embedding.shape == (128,)
        references[name] = found
    names = list(PEOPLE)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            apart = distance(references[a].embedding, references[b].embedding)
            assert apart > SAME_PERSON_DISTANCE, (a, b, apart)
    # The original photo (other framing and size) is the same person as its intake crop.
    with Image.open(PEOPLE["obama"]) as original:
        same = identity.likeness(references["obama"], rgb(original))
    assert same.same_person
    assert same.score is not None
    assert same.score > 0.8


def test_image_without_a_face_is_no_face(identity: DlibFaceIdentity) -> None:
    reference = identity.identify(rgb(selfie_image("hopper")))
    assert reference is not None
    blank = np.full((512, 512, 3), 200, np.uint8)
    noise = np.random.default_rng(1).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    for picture in (blank, noise):
        assert identity.identify(picture) is None
        assert identity.likeness(reference, picture) == Likeness(None)


def test_weak_face_counts_only_where_the_selfie_had_its_face(identity: DlibFaceIdentity) -> None:
    """Biden's pencil sketch: the HOG detector's usual threshold misses the face, the
    guided look (where the selfie's face was) finds it and it is the same person."""
    selfie = selfie_image("biden")
    reference = identity.identify(rgb(selfie))
    assert reference is not None
    sketch = rgb(CpuStyleEngine().render(selfie, "pencil_sketch", {"blur": 21}, 1, 512))
    assert identity.identify(sketch) is None  # a plain detection finds nothing
    assert identity.identify(sketch, near=(0.0, 0.0, 0.2, 0.2)) is None  # not there either
    likeness = identity.likeness(reference, sketch)
    assert likeness.same_person, likeness


def test_pool_serves_threads_with_the_same_answers(identity: DlibFaceIdentity) -> None:
    pictures = [rgb(selfie_image(name)) for name in PEOPLE] * 2
    serial = [identity.identify(p) for p in pictures]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(identity.identify, pictures))
    for a, b in zip(serial, parallel, strict=True):
        assert a is not None
        assert b is not None
        assert np.array_equal(a.embedding, b.embedding)
    assert 1 <= identity.loaded <= identity.max_parallel == 2


def test_missing_model_files_fail_with_their_name(tmp_path: Path) -> None:
    with pytest.raises(FaceIdentityUnavailableError) as info:
        DlibFaceIdentity(models=tmp_path)
    assert "shape_predictor_5_face_landmarks.dat" in info.value.user_message


def test_rgb_arrays_only(identity: DlibFaceIdentity) -> None:
    with pytest.raises(ValueError, match="RGB"):
        identity.identify(np.zeros((64, 64), np.uint8))


# --------------------------------------------------------------------------- the catalog


def test_catalog_minimum_default_and_per_style(tmp_path: Path) -> None:
    shipped = StyleCatalog.load()
    assert all(0 < s.min_likeness <= 1 for s in shipped)
    style = """
[[style]]
id = "{id}"
title = "T"
{extra}
[style.cpu]
effect = "oil"
[style.diffusion]
prompt = "p"
"""
    path = tmp_path / "styles.toml"
    path.write_text(
        "min_likeness = 0.4\n"
        + style.format(id="a", extra="")
        + style.format(id="b", extra="min_likeness = 0.65")
    )
    catalog = StyleCatalog.load(path)
    assert (catalog.get("a").min_likeness, catalog.get("b").min_likeness) == (0.4, 0.65)
    path.write_text(style.format(id="a", extra=""))
    assert StyleCatalog.load(path).get("a").min_likeness == 0.5  # "same person"
    for bad in ("1.5", "-0.1", '"high"', "true"):
        path.write_text(style.format(id="a", extra=f"min_likeness = {bad}"))
        with pytest.raises(StyleCatalogError, match="min_likeness"):
            StyleCatalog.load(path)
