"""Genesis Explorer: build, run, see and train Genesis networks in the browser."""

import streamlit as st

st.set_page_config(page_title="Genesis Explorer", page_icon="🧠", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True, url_path="home"),
    st.Page("pages/build.py", title="Build", icon="🧱", url_path="build"),
    st.Page("pages/run.py", title="Run", icon="▶️", url_path="run"),
    st.Page("pages/activations.py", title="Activations", icon="📊", url_path="activations"),
    st.Page("pages/compare.py", title="Compare", icon="⚖️", url_path="compare"),
    st.Page("pages/train.py", title="Train", icon="🏋️", url_path="train"),
]
st.navigation(pages).run()
