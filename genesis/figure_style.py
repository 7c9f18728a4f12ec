"""One title style for every figure, in lines short enough for where the figure is drawn.

Plotly never wraps a title: a long one runs past the figure's right edge and is cut off. So titles
are wrapped here at word boundaries, and the top margin grows by a line for each extra line. Titles
carry no <b> of their own: the renderer decides their weight (Streamlit's theme already draws them
in its bold heading font, so a <b> inside would make them heavier than the others).
"""

from __future__ import annotations

import textwrap

import plotly.graph_objects as go

TITLE_SIZE = 14
TITLE_LINE = 18  # px one more title line needs
# Characters per title line. Bold 14 px text takes about 6.5 px a character. NARROW: a figure in
# a half-width column (Run, Home, Build) or in one of four Compare columns, about 220 px wide in a
# 1000 px window with the sidebar open. WIDE: a full-width figure on a narrow (600 px) screen.
NARROW = 32
WIDE = 60
PANEL_TITLE_SIZE = 13  # a subplot's own title: below the figure's title, not louder than it


def wrap_title(text: str, width: int) -> str:
    """`text` in lines of at most `width` characters (a longer word keeps its own line), joined by <br>."""
    return "<br>".join(textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False))


def set_title(fig: go.Figure, text: str, width: int = WIDE, top: int = 40) -> go.Figure:
    """The title, left-aligned in the common font, wrapped to `width`; `top`: the margin for one line."""
    wrapped = wrap_title(text, width)
    extra = TITLE_LINE * wrapped.count("<br>")
    fig.update_layout(
        title=dict(text=wrapped, x=0, xanchor="left", font=dict(size=TITLE_SIZE)), margin=dict(t=top + extra)
    )
    if extra and fig.layout.height:
        fig.update_layout(height=fig.layout.height + extra)  # the plot keeps its size
    return fig
