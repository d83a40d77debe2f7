"""Inspect keeps the user's photos for the session: uploads survive a visit to another page, and a
photo sent from the Evaluate page can be removed like any other."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from ram_core import app_support as app
from ram_core import kept_photos
from test_app_pages import APP, INSPECT, SAMPLE, TIMEOUT, drawn_boxes, plotly_specs, tiny_checkpoint, upload

CAT = SAMPLE.parent / "cat.jpg"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture
def inspect_page(checkpoint, monkeypatch):
    monkeypatch.setenv(app.ENV_CHECKPOINT, str(checkpoint))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(INSPECT).run()
    assert not at.exception
    return at


def photo_list(at: AppTest):
    return next(m for m in at.multiselect if m.label == "Your photos")


def test_uploads_survive_inspect_home_inspect(inspect_page):
    at = upload(inspect_page, ("astronaut.jpg", SAMPLE.read_bytes()), ("cat.jpg", CAT.read_bytes()))
    assert not at.exception
    at.switch_page("app.py").run()
    assert not at.exception
    at.switch_page(INSPECT).run()
    assert not at.exception
    assert not [u for u in at.file_uploader if u.label == "Upload images"][0].value  # Streamlit forgot them
    assert sorted(photo_list(at).options) == ["astronaut.jpg", "cat.jpg"]  # the page did not
    assert len(drawn_boxes(plotly_specs(at)["attention"])) == 3


def test_an_upload_after_a_visit_elsewhere_adds_to_the_kept_ones(inspect_page):
    at = upload(inspect_page, ("astronaut.jpg", SAMPLE.read_bytes()))
    at.switch_page("app.py").run()
    at.switch_page(INSPECT).run()
    at = upload(at, ("cat.jpg", CAT.read_bytes()))
    assert not at.exception
    assert sorted(photo_list(at).options) == ["astronaut.jpg", "cat.jpg"]


def test_picked_samples_survive_inspect_home_inspect(inspect_page):
    at = inspect_page
    at.button_group(key="inspect.samples").set_value(["cat.jpg"]).run()
    assert not at.exception and at.get("plotly_chart")
    at.switch_page("app.py").run()
    at.switch_page(INSPECT).run()
    assert not at.exception
    assert at.button_group(key="inspect.samples").value == ["cat.jpg"]
    assert len(drawn_boxes(plotly_specs(at)["attention"])) == 3


def test_a_photo_sent_from_evaluate_can_be_removed(inspect_page):
    at = inspect_page
    at.session_state["inspect_path"] = str(SAMPLE)
    at.run()
    assert not at.exception
    assert photo_list(at).options == ["astronaut.jpg"]
    assert len(drawn_boxes(plotly_specs(at)["attention"])) == 3
    photo_list(at).set_value([]).run()
    assert not at.exception
    assert not [m for m in at.multiselect if m.label == "Your photos"]
    assert not at.get("plotly_chart")
    assert any("Upload one or several images" in i.value for i in at.info)
    at.run()  # and it does not come back
    assert not at.get("plotly_chart")


def test_removing_an_upload_in_the_list_keeps_it_removed_while_the_uploader_still_shows_it(inspect_page):
    at = upload(inspect_page, ("astronaut.jpg", SAMPLE.read_bytes()), ("cat.jpg", CAT.read_bytes()))
    lst = photo_list(at)
    assert sorted(lst.options) == ["astronaut.jpg", "cat.jpg"]
    cat = next(v for v, label in zip(lst.value, lst.options) if label == "cat.jpg")
    lst.set_value([v for v in lst.value if v != cat]).run()
    assert not at.exception
    assert photo_list(at).options == ["astronaut.jpg"]
    at.run()  # the uploader still lists cat.jpg: it is not taken in again
    assert photo_list(at).options == ["astronaut.jpg"]


class _Upload:
    def __init__(self, name: str, data: bytes, file_id: str) -> None:
        self.name, self.file_id, self._data = name, file_id, data

    def getvalue(self) -> bytes:
        return self._data


def test_kept_photos_store_without_streamlit(tmp_path):
    state: dict = {}
    a, b = _Upload("a.jpg", b"aaa", "1"), _Upload("b.jpg", b"bbb", "2")
    kept_photos.take_uploads(state, [a, b])
    kept_photos.take_uploads(state, [a, b])  # the same files on the next run: no duplicates
    assert [p.name for p in kept_photos.kept(state).values()] == ["a.jpg", "b.jpg"]
    kept_photos.uploads_removed(state, [b])  # the uploader's × on a.jpg
    assert [p.name for p in kept_photos.kept(state).values()] == ["b.jpg"]
    kept_photos.take_uploads(state, [b])
    kept_photos.take_uploads(state, [])  # back from another page: Streamlit emptied the uploader
    c = _Upload("c.jpg", b"ccc0", "3")
    kept_photos.uploads_removed(state, [c])  # a new upload then: b.jpg stays
    kept_photos.take_uploads(state, [c])
    assert [p.name for p in kept_photos.kept(state).values()] == ["b.jpg", "c.jpg"]
    kept_photos.uploads_removed(state, [])  # the uploader's × on c.jpg
    assert [p.name for p in kept_photos.kept(state).values()] == ["b.jpg"]
    sent = tmp_path / "sent.jpg"
    sent.write_bytes(b"ccc")
    state[kept_photos.SENT_KEY] = str(sent)
    digest = kept_photos.take_sent(state)
    assert kept_photos.SENT_KEY not in state and kept_photos.kept(state)[digest].origin == "evaluate"
    kept_photos.forget(state, [digest])
    assert [p.name for p in kept_photos.kept(state).values()] == ["b.jpg"]
    for i in range(kept_photos.MAX_KEPT + 5):
        kept_photos.take_uploads(state, [_Upload(f"{i}.jpg", str(i).encode(), f"x{i}")])
    assert len(kept_photos.kept(state)) == kept_photos.MAX_KEPT
