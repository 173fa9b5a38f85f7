"""The interactive explorer: a model, a sentence, and what each pruning method keeps of it, live.

`Explorer` (ipywidgets) lets one choose a trained run or the default model, type a sentence or
a sentence pair, set k, gamma and two methods, and shows for each method the per-layer
token-keep grid, the prediction and its confidence, the tokens kept and the FLOPs saved.
The analysis itself is `tsdtp.explorer.session.analyse`; this module only renders it. Every error
(empty input, unreadable run, a model that fails to load) is shown as a message inside the
widget: no callback ever raises into the kernel.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as w

from tsdtp.classification.prediction import Prediction, pruning_title
from tsdtp.core.config import K_MIN, METHODS
from tsdtp.errors import TsdtpError
from tsdtp.explorer.session import (
    LoadedModel,
    analyse,
    load_default,
    load_run,
    pruning_for,
    resolve_local_path,
    scan_runs,
)

DEFAULT_SOURCE = "default"
"""Value of the model selector that means the packaged default model."""

K_SLIDER_MAX = 3.0
"""Upper end of the k slider (the method `none` switches pruning off entirely)."""

STYLE = """<style>
.tsdtp-explorer .tsdtp-panel {font-size: 13px; padding: 4px 8px;}
.tsdtp-explorer .tsdtp-title {font-weight: 600; font-size: 14px; margin-bottom: 4px;}
.tsdtp-explorer .tsdtp-prediction {font-size: 15px; margin: 2px 0;}
.tsdtp-explorer .tsdtp-probs, .tsdtp-explorer .tsdtp-notes {color: #666; font-size: 12px;}
.tsdtp-explorer .tsdtp-stats {margin: 4px 0 6px 0;}
.tsdtp-explorer .tsdtp-gridbox {max-height: 520px; overflow: auto;}
.tsdtp-explorer table.tsdtp-grid {border-collapse: collapse; font-family: monospace; font-size: 12px;}
.tsdtp-explorer table.tsdtp-grid th {font-weight: 600; padding: 1px 6px; text-align: center;}
.tsdtp-explorer table.tsdtp-grid td {padding: 0 6px; height: 17px; text-align: center;}
.tsdtp-explorer table.tsdtp-grid td.tok {text-align: right; padding-right: 8px; white-space: nowrap;}
.tsdtp-explorer table.tsdtp-grid td.special {font-weight: 700; color: #555;}
.tsdtp-explorer table.tsdtp-grid td.kept {background: #2b8cbe; color: #fff;}
.tsdtp-explorer table.tsdtp-grid td.pruned {background: #f2f2f2; color: #bbb;}
.tsdtp-explorer .tsdtp-error {color: #b00020; font-weight: 600;}
.tsdtp-explorer .tsdtp-info {color: #444;}
</style>"""


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _prediction_html(analysis: Prediction) -> str:
    pairs = zip(analysis.label_names, analysis.probs, strict=True)
    probs = " · ".join(f"{html.escape(name)} {_percent(p)}" for name, p in pairs)
    data = ",".join(f"{p:.6f}" for p in analysis.probs)
    return (f'<div class="tsdtp-prediction" data-label="{html.escape(analysis.label)}" data-probs="{data}">'
            f"prediction: <b>{html.escape(analysis.label)}</b>, {_percent(analysis.confidence)} confidence "
            f'<span class="tsdtp-probs">({probs})</span></div>')


def _stats_html(analysis: Prediction) -> str:
    processed = sum(analysis.tokens_per_layer)
    dense = len(analysis.tokens) * analysis.num_layers
    saved = (f"{_percent(analysis.flops_saved)} saved" if analysis.flops_saved >= 0
             else f"{_percent(-analysis.flops_saved)} more than dense")
    return (f'<div class="tsdtp-stats">tokens kept: {processed} of {dense} token-layers '
            f"({_percent(analysis.keep_ratio)}); {analysis.final_tokens} of {len(analysis.tokens)} tokens reach "
            f"layer {analysis.num_layers}<br>FLOPs: {analysis.flops_ratio:.2f}× dense, {saved}</div>")


def grid_html(analysis: Prediction) -> str:
    """The token-keep grid as an HTML table: one row per token, one column per layer."""
    header = "".join(f"<th>L{layer + 1}</th>" for layer in range(analysis.num_layers))
    rows = []
    for position, token in enumerate(analysis.tokens):
        kind = "tok special" if analysis.special[position] else "tok"
        cells = "".join('<td class="kept">●</td>' if analysis.keep[layer][position] else '<td class="pruned">·</td>'
                        for layer in range(analysis.num_layers))
        rows.append(f'<tr><td class="{kind}">{html.escape(token)}</td>{cells}</tr>')
    return (f'<div class="tsdtp-gridbox"><table class="tsdtp-grid" data-kept="{analysis.kept_cells}" '
            f'data-cells="{len(analysis.tokens) * analysis.num_layers}"><thead><tr><th>token</th>{header}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table></div>')


def analysis_html(analysis: Prediction) -> str:
    """One method's view: title, prediction, tokens kept and FLOPs, notes and the keep grid."""
    pruning = analysis.pruning
    notes = "".join(f"<div>note: {html.escape(note)}</div>" for note in analysis.notes)
    return (f'<div class="tsdtp-panel" data-method="{pruning.method}" data-k="{pruning.k:g}">'
            f'<div class="tsdtp-title">{html.escape(pruning_title(pruning))}</div>{_prediction_html(analysis)}'
            f'{_stats_html(analysis)}<div class="tsdtp-notes">{notes}</div>{grid_html(analysis)}</div>')


def message_html(text: str, error: bool = True) -> str:
    """A readable message line (an error, or information such as 'type a sentence')."""
    kind = "tsdtp-error" if error else "tsdtp-info"
    return f'<div class="{kind}">{html.escape(text)}</div>'


def describe_error(exc: BaseException) -> str:
    """A one-line description of an exception for the user (no traceback)."""
    if isinstance(exc, TsdtpError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Explorer:
    """The explorer widget; display it by making it the last expression of a cell.

    runs_root: folder scanned for trained run directories (those with a checkpoint.pt).
    run_dir: the run shown first; None shows the default model.
    text, text_pair: the first input (a sentence, or a pair).
    methods: the two methods shown side by side ("" as the second shows one).
    k, gamma: the starting threshold width and task-attention weight (both are sliders).
    """

    def __init__(self, runs_root: str | Path = "runs", run_dir: str | Path | None = None, text: str = "",
                 text_pair: str = "", methods: Sequence[str] = ("ts-dtp", "general-dtp"), k: float = 1.0,
                 gamma: float = 0.5) -> None:
        self._models: dict[str, LoadedModel] = {}
        self._found = ""
        self.runs_root = w.Text(value=str(runs_root), description="runs root", layout=w.Layout(width="420px"))
        self.scan = w.Button(description="scan", tooltip="look for trained runs under the runs root")
        self.source = w.Dropdown(description="model", layout=w.Layout(width="640px"))
        self.text = w.Textarea(value=text or "", description="text", placeholder="type or paste a sentence",
                               continuous_update=False, layout=w.Layout(width="640px", height="56px"))
        self.text_pair = w.Textarea(value=text_pair or "", description="pair", continuous_update=False,
                                    placeholder="optional second sentence (sentence-pair tasks such as QNLI)",
                                    layout=w.Layout(width="640px", height="40px"))
        self.method_a, self.method_b, unknown = _method_dropdowns(methods)
        self.k = w.FloatSlider(value=k, min=K_MIN, max=K_SLIDER_MAX, step=0.1, readout_format=".1f",
                               description="k", continuous_update=False)
        self.gamma = w.FloatSlider(value=gamma, min=0.0, max=2.0, step=0.05, readout_format=".2f",
                                   description="γ", continuous_update=False)
        self.k.add_class("tsdtp-k")
        self.gamma.add_class("tsdtp-gamma")
        self.text.add_class("tsdtp-text")
        self.text_pair.add_class("tsdtp-text-pair")
        self.status = w.HTML()
        self.message = w.HTML()
        self.panel_a = w.HTML(layout=w.Layout(flex="1 1 0", min_width="0"))
        self.panel_b = w.HTML(layout=w.Layout(flex="1 1 0", min_width="0"))
        self.widget = self._layout()
        self._fill_sources(None if run_dir is None else str(resolve_local_path(run_dir)))
        self.scan.on_click(lambda _: self._guarded(self._rescan))
        for control in (self.source, self.text, self.text_pair, self.method_a, self.method_b, self.k, self.gamma):
            control.observe(lambda _: self._guarded(self.refresh), names="value")
        self._guarded(self.refresh)
        if unknown:
            self.message.value += message_html(f"unknown method(s) {', '.join(unknown)}; expected one of "
                                               f"{', '.join(METHODS)}")

    def _layout(self) -> w.VBox:
        """The explorer's controls and panels, top to bottom."""
        widget = w.VBox([
            w.HTML(STYLE),
            w.HBox([self.runs_root, self.scan]),
            self.source,
            self.text,
            self.text_pair,
            w.HBox([self.method_a, self.method_b]),
            w.HBox([self.k, self.gamma]),
            self.status,
            self.message,
            w.HBox([self.panel_a, self.panel_b]),
        ])
        widget.add_class("tsdtp-explorer")
        return widget

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _fill_sources(self, selected: str | None) -> None:
        entries = scan_runs(self.runs_root.value)
        options = [("default model (all-MiniLM-L6-v2, untrained head)", DEFAULT_SOURCE)]
        options += [(entry.label, str(entry.path)) for entry in entries]
        values = {value for _, value in options}
        if selected is not None and selected not in values:
            options.append((selected, selected))
        self.source.options = options
        self.source.value = selected if selected is not None else DEFAULT_SOURCE
        self._found = (f"{len(entries)} trained run(s) under {self.runs_root.value}" if entries else
                       f"no trained runs (folders with checkpoint.pt) under {self.runs_root.value}")
        self.status.value = message_html(self._found, error=False)

    def _rescan(self) -> None:
        with self.source.hold_trait_notifications():
            self._fill_sources(self.source.value)
        self.refresh()

    def _guarded(self, action: Callable[[], None]) -> None:
        """Run a callback; any exception becomes a message in the widget instead of a traceback."""
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - the widget must never raise into the kernel
            self._show_message(describe_error(exc))

    def _show_message(self, text: str, error: bool = True) -> None:
        self.message.value = message_html(text, error)
        self.panel_a.value = ""
        self.panel_b.value = ""

    def loaded(self) -> LoadedModel:
        """The selected model, loaded once and cached (a failed load is retried next time)."""
        key = self.source.value or DEFAULT_SOURCE
        if key not in self._models:
            what = "the default model" if key == DEFAULT_SOURCE else f"the run {key}"
            try:
                self._models[key] = load_default() if key == DEFAULT_SOURCE else load_run(key)
            except Exception as exc:
                raise TsdtpError(f"could not load {what}: {describe_error(exc)}") from exc
        return self._models[key]

    def refresh(self) -> None:
        """Recompute and redraw both methods' views for the current input and settings."""
        if not self.text.value.strip():
            self._show_message("The input is empty: type or paste a sentence above.", error=False)
            return
        loaded = self.loaded()
        self.status.value = message_html(f"{self._found}; showing {loaded.title}", error=False)
        self.text.description = loaded.text_fields[0]
        self.text_pair.description = loaded.text_fields[1] if len(loaded.text_fields) > 1 else "pair"
        texts = (self.text.value, self.text_pair.value)
        base = loaded.model.pruning
        views = []
        for method in (self.method_a.value, self.method_b.value):
            if not method:
                views.append("")
                continue
            pruning = pruning_for(base, method, round(self.k.value, 2), round(self.gamma.value, 2))
            views.append(analysis_html(analyse(loaded, texts, pruning)))
        self.message.value = ""
        self.panel_a.value, self.panel_b.value = views


def _method_dropdowns(methods: Sequence[str]) -> tuple[w.Dropdown, w.Dropdown, list[str]]:
    """The method and compare dropdowns set to the first two of `methods`, and the names that are not methods."""
    first, second = (list(methods) + [""])[:2]
    unknown = [m for m in (first, second) if m and m not in METHODS]
    first, second = (first if first in METHODS else "ts-dtp"), (second if second in METHODS else "")
    method_a = w.Dropdown(options=list(METHODS), value=first, description="method")
    method_b = w.Dropdown(options=[("(off)", ""), *((m, m) for m in METHODS)], value=second, description="compare")
    return method_a, method_b, unknown
