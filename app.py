"""Genesis Explorer: build, run, see and train Genesis networks in the browser."""

import plotly.graph_objects as go
import streamlit as st

from genesis.memory import keep_freed_memory

keep_freed_memory()  # this process's malloc keeps freed buffers for the next pass (genesis/memory.py)
st.set_page_config(page_title="Genesis Explorer", page_icon="🧠", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),  # at "/": a default page has no path of its own
    st.Page("pages/build.py", title="Build", icon="🧱", url_path="build"),
    st.Page("pages/run.py", title="Run", icon="▶️", url_path="run"),
    st.Page("pages/activations.py", title="Activations", icon="📊", url_path="activations"),
    st.Page("pages/compare.py", title="Compare", icon="⚖️", url_path="compare"),
    st.Page("pages/train.py", title="Train", icon="🏋️", url_path="train"),
]

# Streamlit fetches plotly.js (4.7 MB) only when a first chart arrives: on a session's first run, ask
# for it with an empty chart so the browser loads it while this run imports torch (cold start 8.2 → 6.6 s).
first_run = "plotly_js_requested" not in st.session_state
if first_run:
    st.session_state["plotly_js_requested"] = True
    warm = st.empty()
    warm.plotly_chart(go.Figure(layout=dict(height=10)), key="plotly_js_warmup")

from pages.common import keep_page_settings  # noqa: E402 (imports torch: after the plotly.js request)

page = st.navigation(pages)
keep_page_settings(page.url_path)
page.run()
if first_run:
    warm.empty()
