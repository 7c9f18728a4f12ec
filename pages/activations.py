"""Activations page (placeholder until its issue lands)."""

from pages.common import model_picker, page_header

active = model_picker()
page_header("Activations", active)
