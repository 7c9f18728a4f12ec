"""`import genesis` stays light: a config, its figures and the app's shared page code load without
transformers' model code (the app's first chart is drawn that way, before the model is loaded), while
the Auto classes still know Genesis from `import genesis` on. Each check runs in a fresh Python."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What `from genesis import Genesis` brings in (PreTrainedModel, GenerationMixin).
MODEL_CODE = ["genesis.modeling", "transformers.modeling_utils", "transformers.generation.utils"]


def fresh_python(code: str) -> dict:
    """Run `code` in a new interpreter at the repo root; it prints one JSON object last."""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def loaded(names: list[str]) -> str:
    return f"sorted(m for m in {names!r} if m in sys.modules)"


def test_the_home_pages_first_chart_needs_no_model_code():
    """What pages/home.py runs before its architecture chart: the shared page code, the config of
    the model the sidebar shows (the demo's config.json, or the Build fields), and the figure."""
    result = fresh_python(
        "import json, sys\n"
        "from pages import common\n"
        "source = common.SOURCES[0] if common.demo_available() else common.SOURCES[1]\n"
        "config = common.source_config(source)\n"
        "figure = common.config_figure('architecture', common.config_json(config))\n"
        "fields = common.parse_fields(common.APP_DEFAULT)[0]\n"
        f"print(json.dumps({{'loaded': {loaded(MODEL_CODE)}, 'traces': len(figure.data),"
        " 'sections': config.n_sections, 'fields_ok': fields is not None}))\n"
    )
    assert result["loaded"] == [], "the first chart would wait for the model code again"
    assert result["traces"] > 0 and result["sections"] >= 1 and result["fields_ok"]


def test_library_modules_for_configs_files_and_figures_import_no_model_code():
    result = fresh_python(
        "import json, sys\n"
        "import genesis\n"
        "from genesis import compat, figures, graphs, io, probes, tokenization, trace\n"
        "config = genesis.preset('app')\n"
        "figures.architecture_figure(config)\n"
        "graphs.architecture_graph(config)\n"
        "io.config_from_dict(config.user_dict())\n"
        "tokenization.encode_text('hello', 16)\n"
        f"print(json.dumps({{'loaded': {loaded(MODEL_CODE)}}}))\n"
    )
    assert result["loaded"] == []


def test_the_model_loads_on_first_use_and_auto_classes_know_it_from_import_genesis(tmp_path):
    from genesis import Genesis, preset

    Genesis(preset("tiny")).save_pretrained(tmp_path)
    result = fresh_python(
        "import json, sys\n"
        "import genesis\n"
        "from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification\n"
        f"before = {loaded(MODEL_CODE)}\n"
        f"loaded = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r})\n"
        f"config = AutoConfig.from_pretrained({str(tmp_path)!r})\n"
        "print(json.dumps({'before': before,\n"
        "    'loaded': [type(loaded).__module__, type(loaded) is genesis.GenesisForCausalLM],\n"
        "    'config': type(config).__name__,\n"
        "    'auto': [type(a.from_config(config)).__name__ for a in (AutoModel, AutoModelForCausalLM)],\n"
        "    'registered': [a._model_mapping[genesis.GenesisConfig] is getattr(genesis, n) for a, n in\n"
        "        ((AutoModel, 'Genesis'), (AutoModelForCausalLM, 'GenesisForCausalLM'),\n"
        "         (AutoModelForSequenceClassification, 'GenesisForSequenceClassification'))],\n"
        "    'submodule': genesis.routing.__name__,\n"
        "    'all_listed': all(name in dir(genesis) for name in genesis.__all__)}))\n"
    )
    assert result["before"] == []
    assert result["loaded"] == ["genesis.modeling", True] and result["config"] == "GenesisConfig"
    assert result["auto"] == ["Genesis", "GenesisForCausalLM"]
    assert result["registered"] == [True, True, True]  # the model, once imported, replaced the stand-ins
    assert result["submodule"] == "genesis.routing"  # submodules are still attributes of the package
    assert result["all_listed"]


def test_public_names_all_resolve_and_unknown_ones_raise():
    import genesis

    namespace: dict = {}
    exec("from genesis import *", namespace)
    assert set(genesis.__all__) <= set(namespace)
    assert namespace["Genesis"] is genesis.Genesis is genesis.modeling.Genesis
    assert namespace["byte_tokenizer"] is genesis.tokenization.byte_tokenizer
    for name in ("no_such_name", "_private"):
        with pytest.raises(AttributeError, match=name):
            getattr(genesis, name)
