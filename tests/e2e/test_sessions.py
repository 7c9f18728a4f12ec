"""Many sessions at once: 8 browser sessions against one app server, each doing different things
for about a minute. No page may show an error, and every route a session is shown must equal a
solo run of the same config and text computed here with the library: no cross-talk through the
models the sessions share (st.cache_resource).

Each session runs in its own thread with its own Playwright and Chromium (the sync API is per
thread). A summary of what was done lands in artifacts/sessions.json (figures for the README).
"""

from __future__ import annotations

import json
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import torch

import genesis
from genesis import io as gio
from genesis import probes
from genesis.configuration import FIELDS
from tests.e2e.conftest import (
    ROOT,
    VIEWPORT,
    alerts,
    assert_no_error,
    choose,
    goto,
    keyed,
    launch_chromium,
    main_text,
    open_page,
    press_run,
    press_slider,
    route_caption,
    screenshot,
    wait_for_app,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SESSIONS = 8
SECONDS = 60  # each session keeps acting this long after its first page is up
FRESH = "Fresh model from the Build config"
APP_DEFAULT = genesis.preset("app").user_dict()
SUMMARY = ROOT / "artifacts" / "sessions.json"


# ---------------------------------------------------------------------------------------------
# The expected route: the library, alone, in this process


def fields_from_url(url: str) -> dict:
    """The session's config as its URL carries it (the app writes fields that differ from its default)."""
    query = {k: v[-1] for k, v in parse_qs(urlparse(url).query).items()}
    fields = dict(APP_DEFAULT)
    for name in FIELDS:
        if name in query:
            raw, default = query[name], APP_DEFAULT[name]
            if raw == "None":
                fields[name] = None
            elif isinstance(default, bool) or name == "n_causal":
                fields[name] = raw == "True"
            else:
                fields[name] = int(raw) if isinstance(default, int) else raw
    return fields


class Solo:
    """Routes computed with the library, one model per config (built here, never the app's)."""

    def __init__(self):
        self.models: dict[str, genesis.Genesis] = {}
        self.lock = threading.Lock()

    def model(self, fields: dict) -> genesis.Genesis:
        key = json.dumps(fields, sort_keys=True)
        with self.lock:
            if key not in self.models:
                self.models[key] = genesis.Genesis(gio.config_from_dict(fields)).eval()
            return self.models[key]

    def routes(self, fields: dict, text: str) -> tuple[list[tuple[int, list[int], str]], int]:
        """[(section, route, stop reason)] and the count, for the first line alone (what the Run page shows)."""
        model = self.model(fields)
        line = next(line for line in text.splitlines() if line.strip())
        ids, _ = probes.encode_for(model.config, line)
        with torch.no_grad():
            trace = probes.run(model, ids).trace
        sections = [(s.section, s.route_of(0), s.stop_reason) for s in trace.sample_sections(0)]
        return sections, trace.count


def shown_routes(caption: str) -> tuple[list[tuple[int, list[int], str]], int]:
    """The same structure, read back from the Run page's caption."""
    sections = [
        (int(section), [int(n) for n in route.split("→")], reason)
        for section, route, reason in re.findall(r"section (\d+): ([\d →]+) \(([^)]*)\)", caption)
    ]
    count = re.search(r"(\d+) neurons fired", caption)
    return sections, int(count.group(1)) if count else -1


# ---------------------------------------------------------------------------------------------
# Sessions


@dataclass
class Session:
    name: str
    fields: dict  # overrides of the app default, put in the first URL
    texts: list[str]
    act: Callable  # (session, page, step) -> None: one thing a user does, ending on the Run page
    solo: Solo | None = None
    index: int = 0
    checks: int = 0
    actions: int = 0
    pages: set[str] = field(default_factory=set)
    error: str | None = None

    def check(self, page) -> None:
        """No error anywhere; the route shown is the solo route of the session's config and text."""
        assert_no_error(page)
        assert not [a for a in alerts(page) if "invalid" in a.lower() or "refused" in a.lower()], alerts(page)
        assert "Model: fresh model from the Build config" in main_text(page)
        text = keyed(page, "run_text_input").locator("textarea").input_value()
        assert parse_qs(urlparse(page.url).query)["text"] == [text], "the URL carries the text shown"
        expected = self.solo.routes(fields_from_url(page.url), text)
        shown = shown_routes(route_caption(page))
        assert shown == expected, f"{self.name}: text {text!r}, url {page.url}: shown {shown}, alone {expected}"
        self.checks += 1


def run_text_and_wait(page, text: str) -> None:
    """Type `text` on the Run page, press Run, and wait until the run that used it has finished:
    the app puts the text into the URL at the start of that run (under load a fixed pause is not
    enough to tell the new run from the last one)."""
    keyed(page, "run_text_input").locator("textarea").fill(text)
    press_run(page)
    page.wait_for_function(
        "(text) => new URLSearchParams(location.search).get('text') === text", arg=text, timeout=120_000
    )
    wait_for_app(page, timeout=120_000)


def type_texts(session: Session, page, step: int) -> None:
    run_text_and_wait(page, session.texts[step % len(session.texts)])


def change_config(session: Session, page, step: int) -> None:
    """Build page: one neighbor more or less (the URL follows), then back to Run."""
    open_page(page, "build")
    session.pages.add("build")
    press_slider(page, "build_n_neighbors", "ArrowLeft" if step % 2 else "ArrowRight")
    wait_for_app(page)
    assert_no_error(page)
    open_page(page, "run")
    run_text_and_wait(page, session.texts[step % len(session.texts)])


def visit_pages(session: Session, page, step: int) -> None:
    """Another page of the app, then a text on Run."""
    slug = ("activations", "compare", "train")[(step + session.index) % 3]  # sessions wander differently
    open_page(page, slug)
    session.pages.add(slug)
    assert_no_error(page)
    open_page(page, "run")
    run_text_and_wait(page, session.texts[step % len(session.texts)])


def train_then_texts(session: Session, page, step: int) -> None:
    """First a short training (its model is then shown on Run), then texts on the fresh model."""
    if step:
        return type_texts(session, page, step)
    open_page(page, "train")
    session.pages.add("train")
    for key, value in (("train_steps", "10"), ("train_batch", "4")):
        box = keyed(page, key).locator("input")
        box.fill(value)
        box.press("Enter")
        wait_for_app(page)
    keyed(page, "train_start").locator("button").click()
    page.get_by_text("The model is now").wait_for(timeout=120_000)
    wait_for_app(page)
    assert_no_error(page)
    open_page(page, "run")
    pick_model(page, "Trained in this session")
    assert_no_error(page)
    assert "Model: trained in this session" in main_text(page)
    assert shown_routes(route_caption(page))[0], "the trained model routes the text"
    pick_model(page, FRESH)
    run_text_and_wait(page, session.texts[0])


def pick_model(page, source: str) -> None:
    """Choose a model in the sidebar and wait for the run that shows it (the URL names the source)."""
    choose(page, "model_source_widget", source)
    page.wait_for_function(
        "(source) => new URLSearchParams(location.search).get('source') === source", arg=source, timeout=120_000
    )
    wait_for_app(page, timeout=120_000)


TEXTS = ["hello world", "Genesis routes a signal through a few neurons.", "😀 emoji, 中文, and tabs\there"]
PLANS = [
    Session("default config", {}, TEXTS, type_texts),
    Session("same config, other texts", {}, ["0123456789", "the lazy dog", "zzz"], type_texts),
    Session("another seed and wiring", {"n_seed": 7, "n_neighbors": 2}, TEXTS, type_texts),
    Session("per-sample routing, lines", {"n_routing": "sample"}, ["first line\nsecond line", "a\nb\nc"], type_texts),
    Session("sequential sections", {"n_section": "sequential", "n_sections": 3, "n_dim": 96}, TEXTS, type_texts),
    Session("classifier", {"n_output": "sequence_classifier", "n_outputs": 3, "n_seed": 3}, TEXTS, type_texts),
    Session("build then run", {"n_seed": 11}, TEXTS, change_config),
    Session("train, then other pages", {"n_neurons": 8, "n_neighbors": 3}, TEXTS, train_then_texts),
]
assert len(PLANS) == SESSIONS


def run_session(app_url: str, session: Session) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        try:
            query = {**{k: str(v) for k, v in session.fields.items()}, "source": FRESH, "text": session.texts[0]}
            goto(page, f"{app_url}/run?{urlencode(query)}", timeout=120_000)
            session.pages.add("run")
            session.check(page)
            deadline = time.monotonic() + SECONDS
            step = 0
            while time.monotonic() < deadline:
                session.act(session, page, step)
                session.actions += 1
                session.check(page)
                if session.act is type_texts and step % 4 == 3:
                    visit_pages(session, page, step)  # the text-typing sessions also wander
                    session.check(page)
                step += 1
        except Exception:
            session.error = traceback.format_exc()
            screenshot(page, f"session-failed-{session.name.replace(' ', '-').replace(',', '')}")
        finally:
            context.close()
            browser.close()


def test_eight_sessions_at_once_see_their_own_routes(app_url):
    torch.set_num_threads(1)  # the app and eight browsers share the machine with these solo runs
    solo = Solo()
    sessions = [Session(s.name, s.fields, s.texts, s.act, solo, index) for index, s in enumerate(PLANS)]
    threads = [threading.Thread(target=run_session, args=(app_url, s), name=s.name) for s in sessions]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    summary = {
        "sessions": len(sessions),
        "seconds": round(time.monotonic() - started),
        "route_checks": sum(s.checks for s in sessions),
        "actions": sum(s.actions for s in sessions),
        "per_session": [
            {"name": s.name, "actions": s.actions, "route_checks": s.checks, "pages": sorted(s.pages), "error": s.error}
            for s in sessions
        ],
    }
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(json.dumps(summary, indent=2))
    assert not any(t.is_alive() for t in threads), "a session hung"
    failures = [f"--- {s.name}\n{s.error}" for s in sessions if s.error]
    assert not failures, "\n".join(failures)
    for s in sessions:
        assert s.actions >= 1 and s.checks >= 2, f"{s.name} did too little in {SECONDS} s"
    assert {"run", "build", "train", "activations", "compare"} <= set().union(*(s.pages for s in sessions))
