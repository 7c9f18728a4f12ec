"""Page settings survive a visit to another page (Streamlit alone forgets a widget's value once a
run does not draw it)."""

from __future__ import annotations

import pytest

from tests.app.conftest import assert_ok, open_app

pytestmark = pytest.mark.slow


def test_settings_are_as_left_after_visiting_other_pages():
    at = open_app("train")
    at.number_input(key="train_steps").set_value(50).run()
    at.number_input(key="train_lr").set_value(0.0001).run()
    at.switch_page("pages/run.py").run()
    at.toggle(key="run_per_line").set_value(False).run()
    at.switch_page("pages/compare.py").run()
    at.slider(key="cmp_count").set_value(3).run()
    at.text_input(key="cmp_seeds").set_value("7, 8").run()
    at.switch_page("pages/activations.py").run()
    at.radio(key="act_source").set_value("Typed lines").run()
    at.text_area(key="act_lines").set_value("one\ntwo").run()
    at.switch_page("pages/build.py").run()

    at.switch_page("pages/train.py").run()
    assert_ok(at)
    assert (at.number_input(key="train_steps").value, at.number_input(key="train_lr").value) == (50, 0.0001)
    at.switch_page("pages/run.py").run()
    assert at.toggle(key="run_per_line").value is False
    at.switch_page("pages/compare.py").run()
    assert (at.slider(key="cmp_count").value, at.text_input(key="cmp_seeds").value) == (3, "7, 8")
    at.switch_page("pages/activations.py").run()
    assert_ok(at)
    assert (at.radio(key="act_source").value, at.text_area(key="act_lines").value) == ("Typed lines", "one\ntwo")


def test_compare_keeps_its_seeds_while_a_slot_is_unusable():
    at = open_app("compare")
    at.text_input(key="cmp_seeds").set_value("7, 8").run()
    at.selectbox(key="cmp_1").set_value("Shared app URL").run()  # empty: the page stops before the seeds
    assert any("at least two" in i.value for i in at.info)
    at.text_input(key="cmp_url_1").set_value("http://x/build?n_dim=64").run()
    assert_ok(at)
    assert at.text_input(key="cmp_seeds").value == "7, 8"
