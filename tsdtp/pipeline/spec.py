"""The pipeline spec (`pipeline.yaml`): load it, pick a profile and check each step against its notebook.

A profile lists steps (a notebook, its parameters and its outputs) and `defaults` for the
parameters of every notebook that takes them. This module checks what the spec says on its
own; `tsdtp.pipeline.plan` turns the checked steps into training configurations.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tsdtp.errors import ConfigError
from tsdtp.runs.launch import launcher_words

SPEC_FILE = "pipeline.yaml"
INJECTED: tuple[str, ...] = ("run_dir", "data_dir", "results_csv", "bench_csv", "traces_dir", "hypotheses_dir",
                             "figures_dir", "tables_dir", "force", "progress")
"""Parameters the pipeline fills in itself; a spec may not set them."""
OUTPUT_KEYS = frozenset({"figure", "table", "caption", "optional"})


@dataclass(frozen=True)
class Output:
    """One declared output: a figure stem (PNG and PDF) or a table file, with its gallery caption."""

    kind: str
    name: str
    caption: str
    optional: bool = False

    def files(self) -> list[str]:
        """Paths of its files relative to the reports folder."""
        if self.kind == "figure":
            return [f"figures/{self.name}.png", f"figures/{self.name}.pdf"]
        return [f"tables/{self.name}"]


@dataclass(frozen=True)
class Profile:
    """One profile of the spec with its folders resolved; `steps` are still as written (nested lists flattened)."""

    name: str
    description: str
    spec_path: Path
    root: Path
    notebooks_dir: Path
    runs_root: Path
    out_dir: Path
    defaults: dict[str, Any]
    steps: tuple[Any, ...]
    launcher: str | None = None


@dataclass(frozen=True)
class StepSpec:
    """One step checked against its notebook: `parameters` has the profile's defaults applied."""

    id: str
    notebook: Path
    declared: frozenset[str]
    parameters: dict[str, Any]
    defaulted: frozenset[str]
    outputs: Any
    figures_only_parameters: dict[str, Any]


def project_root(start: str | Path | None = None) -> Path:
    """`start` (default: the working directory) if it holds the spec, else its parent if that does, else `start`.

    Notebooks change to it first, so their relative paths mean the same in JupyterLab (which
    starts them in notebooks/) and under `reproduce` (which starts them in the root).
    """
    start = Path(start or Path.cwd()).resolve()
    return next((folder for folder in (start, start.parent) if (folder / SPEC_FILE).is_file()), start)


def load_spec(path: str | Path) -> dict[str, Any]:
    """The parsed spec file; ConfigError when it is missing or not a mapping with `profiles`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no pipeline spec at {path}; run from the repository root or pass --spec")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("profiles"), dict):
        raise ConfigError(f"{path} must be a mapping with a `profiles` mapping")
    return spec


def read_profile(profile: str, spec_path: str | Path | None = None, runs_root: str | Path | None = None,
                 out_dir: str | Path | None = None) -> Profile:
    """Profile `profile` of the spec (default ./pipeline.yaml); `runs_root` and `out_dir` override the spec's."""
    spec_path = Path(spec_path or Path.cwd() / SPEC_FILE).resolve()
    spec = load_spec(spec_path)
    root = spec_path.parent
    profiles = spec["profiles"]
    if profile not in profiles:
        raise ConfigError(f"unknown profile {profile!r}; {spec_path.name} defines {', '.join(profiles)}")
    body = profiles[profile]
    defaults = dict(body.get("defaults") or {})
    bad_defaults = set(defaults) & set(INJECTED)
    if bad_defaults:
        raise ConfigError(f"profile {profile}: defaults set {sorted(bad_defaults)}, which the pipeline fills in")
    return Profile(
        name=profile, description=str(body.get("description", "")), spec_path=spec_path, root=root,
        notebooks_dir=root / spec.get("notebooks_dir", "notebooks"),
        runs_root=Path(runs_root) if runs_root is not None else root / spec.get("runs_root", "runs"),
        out_dir=Path(out_dir) if out_dir is not None else root / body.get("out_dir", "reports"),
        defaults=defaults, steps=tuple(_flatten(body.get("steps") or [])), launcher=_launcher(profile, body))


def _launcher(profile: str, body: dict[str, Any]) -> str | None:
    """The profile's `launcher` (e.g. `torchrun --nproc-per-node 2`: training steps run through it), or None."""
    launcher = body.get("launcher")
    if launcher is None:
        return None
    if not isinstance(launcher, str):
        raise ConfigError(f"profile {profile}: launcher must be a command line such as 'torchrun --nproc-per-node 2' "
                          f"(got {launcher!r})")
    launcher_words(launcher)
    return launcher


def _flatten(steps: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for step in steps:
        flat.extend(_flatten(step) if isinstance(step, list) else [step])
    return flat


def notebook_parameters(notebook: Path) -> frozenset[str]:
    """Names a notebook's `parameters` cell declares, checked to be exactly those papermill can set."""
    import nbformat  # nbformat and papermill take seconds to import: only when a spec is checked
    import papermill

    cells = [c for c in nbformat.read(notebook, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ConfigError(f"{notebook.name} has {len(cells)} cells tagged `parameters`; expected exactly one")
    assigned = {target.id for node in ast.parse(cells[0].source).body if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Name)}
    parsed = set(papermill.inspect_notebook(str(notebook)))
    if assigned != parsed:
        raise ConfigError(f"papermill cannot read parameter(s) {sorted(assigned - parsed)} of {notebook.name}; "
                          "keep one `name = value  # comment` per line, without '=' in comments")
    return frozenset(parsed)


def read_step(profile: Profile, raw: Any, earlier_ids: set[str]) -> StepSpec:
    """Step `raw` of `profile`: a unique id, an existing notebook that declares every parameter given."""
    if not isinstance(raw, dict):
        raise ConfigError(f"profile {profile.name}: each step must be a mapping with id, notebook, parameters")
    step_id = str(raw.get("id", ""))
    if not step_id or step_id in earlier_ids:
        raise ConfigError(f"profile {profile.name}: every step needs a unique id (got {step_id!r})")
    notebook = profile.notebooks_dir / str(raw.get("notebook", ""))
    if not notebook.is_file():
        raise ConfigError(f"step {step_id}: notebook {notebook} does not exist")
    declared = notebook_parameters(notebook)
    given = dict(raw.get("parameters") or {})
    unknown = set(given) - declared
    if unknown:
        raise ConfigError(f"step {step_id}: {notebook.name} takes no parameter(s) {sorted(unknown)}; "
                          f"it takes {', '.join(sorted(declared))}")
    reserved = set(given) & set(INJECTED)
    if reserved:
        raise ConfigError(f"step {step_id}: {sorted(reserved)} are filled in by the pipeline; remove them")
    applied = {key: value for key, value in profile.defaults.items() if key in declared and key not in given}
    redraw = dict(raw.get("figures_only_parameters") or {})
    if set(redraw) - declared:
        raise ConfigError(f"step {step_id}: figures_only_parameters {sorted(set(redraw) - declared)} are not "
                          f"parameters of {notebook.name}")
    return StepSpec(step_id, notebook, declared, {**applied, **given}, frozenset(applied), raw.get("outputs"),
                    redraw)


def read_outputs(step_id: str, raw: Any) -> tuple[Output, ...]:
    """The outputs a step declares: each exactly one of `figure`/`table`, a caption, optionally `optional`."""
    outputs = []
    for item in raw or []:
        kinds = [kind for kind in ("figure", "table") if kind in item]
        if len(kinds) != 1 or not isinstance(item.get("caption"), str):
            raise ConfigError(f"step {step_id}: output {item} needs exactly one of figure/table and a caption")
        unknown = set(item) - OUTPUT_KEYS
        if unknown:
            raise ConfigError(f"step {step_id}: output {item} has unknown key(s) {sorted(unknown)}")
        outputs.append(Output(kinds[0], str(item[kinds[0]]), item["caption"], bool(item.get("optional", False))))
    return tuple(outputs)


def check_defaults_used(profile: Profile, used: set[str]) -> None:
    """ConfigError when a default of `profile` is taken by no step (`used`: the defaults some step took)."""
    unused = set(profile.defaults) - used
    if unused:
        raise ConfigError(f"profile {profile.name}: no notebook takes the default(s) {sorted(unused)}")
