"""Every hyper-parameter of a training run, recorded in ``<out>/config.json``.

Each option is declared once, as a :class:`TrainConfig` field made by :func:`option`: its default, help
text, command-line flag and whether it may change when a run is resumed. ``seeingsounds train``'s
options (:func:`seeingsounds.cli.train.add_arguments`), the construction of the config from them and
the resume check (:func:`seeingsounds.training.state.option_differences`) all derive from these fields.
A config file (``train --config``: a run's ``config.json`` or a hand-written JSON/YAML file of options) is
read here too (:func:`read_config_file`, :meth:`TrainConfig.from_options`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, ClassVar

from seeingsounds.errors import ConfigError
from seeingsounds.textfiles import Pairs, parse_json_or_yaml, read_data_text

#: the largest seed numpy's legacy seeding (which accelerate's set_seed calls) accepts
SEED_MAX = 2**32 - 1

DEVICES = ("auto", "cpu", "cuda", "mps")
CAPTION_ENGINES = ("template", "llm")
#: the choices of the fields whose values are checked against the constants of modules that load torch
#: (``seeingsounds.devices``, ``.cache``, ``.model``, ``.aligner``); tests/test_train_options.py keeps them equal
COMPUTE_DTYPES = ("auto", "fp32", "fp16", "bf16")
CACHE_DTYPES = ("float16", "bfloat16", "float32")
ALIGN_CHOICES = ("all", "sequence", "pooled")
POOLINGS = ("attention", "average")
ORDERS = ("adapter_first", "pool_first")

#: the ``train --help`` groups, in the order they are listed (``None``: the required options, listed first)
TRAINING, FEATURE_CACHE, ABLATIONS, EXTENDED = (
    "training", "feature cache", "ablations (paper Table 4)", "extended training (paper Eq. 7)")


@dataclass(frozen=True)
class Option:
    """How one :class:`TrainConfig` field is set and checked, apart from its default and type."""

    help: str = ""
    #: the command-line flag (default ``--<name-with-dashes>``); for a bool field the flag flips its default
    flag: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    #: the ``train --help`` group (None: the required options at the top)
    group: str | None = TRAINING
    #: the value may differ when the run is resumed (it does not change the result)
    resumable: bool = False
    #: a path: compared resolved, so a resume may spell it relative or absolute
    path: bool = False
    #: the flag may be given several times; the parsed list goes through ``from_cli``
    repeat: bool = False
    #: turns the parsed command-line value into the field's value (may raise ConfigError)
    from_cli: Callable[[Any], Any] | None = None
    #: says how one `train` call runs (continue a run, pause after N steps), not what the run trains: a run's
    #: config.json records it, but a new run started from that file (``--config``) does not take it
    per_call: bool = False


def option(default: Any = MISSING, *, default_factory: Any = MISSING, **how: Any) -> Any:
    """A :class:`TrainConfig` field with its :class:`Option` (keywords: the fields of :class:`Option`)."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"option": Option(**how)})


def parse_weights(items: list[str]) -> dict[str, float]:
    """``--weight NAME=W`` options as ``{name: weight}``."""
    weights = {}
    for item in items:
        name, eq, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            eq = ""
        if not eq:
            raise ConfigError(f"--weight {item!r}: write NAME=W, e.g. pooled_prompt_embeds=0.5")
    return weights


def parse_augments(specs: list[str]) -> list[list[list[Any]]]:
    """``--augment`` options, one chain each (:func:`parse_augment`)."""
    return [parse_augment(s) for s in specs]


@dataclass
class TrainConfig:
    """A training run (paper Eq. 6, or Eq. 7 when ``augment`` / ``mix_pairs`` are set).

    ``None`` for ``lr_sequence``, ``lr_pooled``, ``order``, ``pooling`` and ``hidden_dim`` means
    the preset's value. Each field's help text is its :class:`Option` (``train --help``).
    """

    preset: str | dict[str, Any] = option(help="preset name (see `seeingsounds presets`)", group=None)
    # data and captions may move on a resume (a project copied to another machine): their content decides
    # whether it is the same run (training.state.check_same_data compares the hashes)
    data: str = option(help="manifest (.csv/.jsonl: path,label[,split]) or class-per-folder directory",
                       group=None, path=True, resumable=True)
    captions: str = option(help="class captions file (.json/.yaml: label -> caption(s))", group=None, path=True,
                           resumable=True)
    out: str = option(help="run folder (best/, last/, config.json, metrics.jsonl)", group=None, path=True,
                     resumable=True)  # a run folder moved or renamed is still the run
    epochs: int = option(50, resumable=True)
    batch_size: int = option(32)
    lr_sequence: float | None = option(None, help="learning rate of the sequence head(s) (default: the preset's)")
    lr_pooled: float | None = option(None, help="learning rate of the pooled head(s) (default: the preset's)")
    weight_decay: float = option(0.01)
    patience: int = option(5, help="early stopping: epochs without val-loss improvement", resumable=True)
    min_delta: float = option(0.0, help="early stopping: the least val-loss decrease that counts as an improvement")
    seed: int = option(0)
    val_fraction: float = option(0.1, help="val share per class when the manifest has no split")
    skip_bad: bool = option(False, help="skip audio files that cannot be read or decoded (listed) instead of failing")
    use_cache: bool = option(True, flag="--no-cache", help="run the frozen encoder live every step",
                             group=FEATURE_CACHE)
    cache_dir: str | None = option(None, help="feature cache folder (default: $SEEINGSOUNDS_HOME/features)",
                                   group=FEATURE_CACHE, resumable=True, path=True)
    cache_dtype: str = option("float16", choices=CACHE_DTYPES, group=FEATURE_CACHE)
    resume: bool = option(False, help="continue the interrupted run in --out", resumable=True, per_call=True)
    align: str = option("all", choices=ALIGN_CHOICES, group=ABLATIONS,
                        help="train both heads, only the sequence (T5) or only the pooled (CLIP) head")
    pooling: str | None = option(None, choices=POOLINGS, group=ABLATIONS,
                                 help="attention pooling (paper) or average pooling")
    order: str | None = option(None, choices=ORDERS, group=ABLATIONS,
                               help="adapter before pooling (paper) or after")
    hidden_dim: int | None = option(None, help="adapter width", group=ABLATIONS)
    dropout: float = option(0.0, help="dropout in the adapters, in [0, 1)", group=ABLATIONS)
    #: per-tensor loss weights, ``{name: weight}`` (default 1 each)
    target_weights: dict[str, float] = option(
        default_factory=dict, flag="--weight", metavar="NAME=W", group=ABLATIONS, repeat=True,
        from_cli=parse_weights,
        help="loss weight of one conditioning tensor, e.g. pooled_prompt_embeds=0.5 (default 1)")
    device: str = option("auto", choices=DEVICES, resumable=True,
                         help="where the aligner trains and the text encoders compute the caption targets "
                              "(auto: the accelerator when there is one)")
    #: the text encoders' dtype while computing caption targets (``auto``: bf16 on an accelerator
    #: that supports it, fp16 on other accelerators, fp32 on the CPU; :mod:`seeingsounds.devices`)
    dtype: str = option("auto", choices=COMPUTE_DTYPES, resumable=True,
                        help="the text encoders' dtype for caption targets (auto: bf16 where supported, fp16 on "
                             "other accelerators, fp32 on the CPU)")
    num_workers: int = option(0, help="data-loader worker processes", resumable=True)
    encode_batch_size: int = option(16, help="clips (and captions) per encoder batch while filling the feature "
                                             "cache and computing caption targets", resumable=True)
    #: stop after this many optimiser steps in this call (the run can be resumed later)
    max_steps: int | None = option(None, help="stop after this many steps (continue later with --resume)",
                                   resumable=True, per_call=True)
    progress: bool = option(True, flag="--no-progress", help="no progress bars", resumable=True)
    # ---- extended training (paper Eq. 7) ----
    #: effect chains T_j, each ``[(name, params), ...]``; one transformed pair per clip and chain
    augment: list[list[Any]] = option(
        default_factory=list, metavar="EFFECT[:k=v,...][+EFFECT...]", group=EXTENDED, repeat=True,
        from_cli=parse_augments,
        help="one transformation T_j per option, e.g. --augment volume:alpha=0.1 --augment reverb "
             "--augment volume:alpha=0.35+reverb:room_size=0.8 (a chain)")
    #: mixed pairs (a_i + a_j, g(t_u, t_v)): one seeded pool of this many, drawn once and reused every epoch
    mix_pairs: int = option(0, group=EXTENDED,
                            help="mixed pairs (a_i + a_j, fused caption): one seeded pool, reused every epoch")
    mix_ratio: float = option(0.5, help="share of the second clip in a mix", group=EXTENDED)
    augment_weight: float = option(1.0, help="weight of the transformed-pairs term", group=EXTENDED)
    mix_weight: float = option(1.0, help="weight of the mixed-pairs term", group=EXTENDED)
    caption_engine: str = option("template", choices=CAPTION_ENGINES, group=EXTENDED,
                                 help="f and g: templates or an LLM (llm: its API key in the OPENAI_API_KEY "
                                      "environment variable)")
    #: ``llm`` engine: endpoint base URL (None: the engine's default), chat model, sampling
    #: temperature (0: reproducible), and an extra JSON cache shared across runs (the run's own
    #: edits are always kept in ``<out>/caption_edits.jsonl``); the endpoint and cache may move on a
    #: resume (the run's edits come from ``<out>/caption_edits.jsonl``)
    llm_base_url: str | None = option(None, help="llm: endpoint base URL (default https://api.openai.com/v1)",
                                      group=EXTENDED, resumable=True)
    llm_model: str | None = option(None, help="llm: chat model (default gpt-4o, as in the paper)", group=EXTENDED)
    llm_temperature: float = option(0.0, help="llm: sampling temperature (default 0: the same captions every run)",
                                    group=EXTENDED)
    llm_cache: str | None = option(None, group=EXTENDED, resumable=True, path=True,
                                   help="llm: JSON cache of produced captions shared across runs (the run's own "
                                        "edits are always kept in <out>/caption_edits.jsonl and reused by --resume)")
    #: encode transformed/mixed audio through the feature cache (True) or live every epoch (False,
    #: ``--augment-live``: the cache then holds the unmodified clips only)
    cache_augmented: bool = option(True, flag="--augment-live", group=EXTENDED,
                                   help="encode transformed/mixed audio live every epoch instead of caching it")
    #: on an accelerator, the class and edited caption targets are kept on the device (in the
    #: training dtype) when they fit in this many GiB (None: a quarter of the device's memory);
    #: otherwise, and always on the CPU, every batch reads its rows from the run's target file
    target_memory_gb: float | None = option(
        None, resumable=True, help="accelerator memory for class/edited caption targets (default: a quarter of "
                                   "the device's); what does not fit is read per batch")

    #: the fields that may differ when a run is resumed (they do not change the result), and the fields
    #: holding paths (compared resolved); both derived from the fields' options, below the class
    RESUMABLE_CHANGES: ClassVar[tuple[str, ...]]
    PATH_FIELDS: ClassVar[tuple[str, ...]]

    def __post_init__(self) -> None:
        self.data, self.captions, self.out = str(self.data), str(self.captions), str(self.out)
        problems = []
        for name in self.PATH_FIELDS:  # "" is Path("."): an empty --data would read the working directory
            value = getattr(self, name)
            if value is not None and not str(value).strip():
                problems.append(f"{name} is an empty path; name a file or folder")
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if self.patience < 1:
            problems.append(f"patience must be >= 1 epoch, got {self.patience}")
        for name in ("lr_sequence", "lr_pooled"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                problems.append(f"{name} must be a positive number, got {value}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            problems.append(f"weight_decay must be a number >= 0, got {self.weight_decay}")
        if not 0 <= self.seed <= SEED_MAX:
            problems.append(f"seed must be in 0..{SEED_MAX} (2**32-1), got {self.seed}")
        if self.device not in DEVICES:
            problems.append(f"device must be one of {DEVICES}, got {self.device!r}")
        from seeingsounds.devices import DTYPES as DTYPE_SPELLINGS  # deferred on purpose: it loads torch

        if self.dtype != "auto" and str(self.dtype).lower() not in DTYPE_SPELLINGS:
            problems.append(f"dtype must be auto or one of {sorted(DTYPE_SPELLINGS)}, got {self.dtype!r}")
        if self.num_workers < 0:
            problems.append(f"num_workers must be >= 0, got {self.num_workers}")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max_steps must be >= 1, got {self.max_steps}")
        if any(w < 0 for w in self.target_weights.values()):
            problems.append(f"target weights must be >= 0, got {self.target_weights}")
        if self.mix_pairs < 0:
            problems.append(f"mix_pairs must be >= 0, got {self.mix_pairs}")
        if not 0.0 < self.mix_ratio < 1.0:
            problems.append(f"mix_ratio must be in (0, 1), got {self.mix_ratio}")
        if self.augment_weight < 0 or self.mix_weight < 0:
            problems.append("augment_weight and mix_weight must be >= 0")
        if not 0.0 <= self.llm_temperature <= 2.0:
            problems.append(f"llm_temperature must be in [0, 2], got {self.llm_temperature}")
        if self.caption_engine != "llm":
            used = [n for n in ("llm_base_url", "llm_model", "llm_cache") if getattr(self, n) is not None]
            if used or self.llm_temperature != 0.0:
                problems.append(f"{', '.join(used) or 'llm_temperature'} only apply to caption_engine='llm'")
        if self.target_memory_gb is not None and self.target_memory_gb < 0:
            problems.append(f"target_memory_gb must be >= 0, got {self.target_memory_gb}")
        if self.caption_engine not in CAPTION_ENGINES:
            problems.append(f"caption_engine must be one of {CAPTION_ENGINES}, got {self.caption_engine!r}")
        # choices checked here, so a typo fails before any model is loaded
        for name, value, choices in (("align", self.align, ALIGN_CHOICES), ("pooling", self.pooling, POOLINGS),
                                     ("order", self.order, ORDERS), ("cache_dtype", self.cache_dtype, CACHE_DTYPES)):
            if value is not None and value not in choices:
                problems.append(f"{name} must be one of {choices}, got {value!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if self.hidden_dim is not None and self.hidden_dim < 1:
            problems.append(f"hidden_dim must be >= 1, got {self.hidden_dim}")
        self.augment = [[[str(n), dict(p or {})] for n, p in chain] for chain in self.augment]
        if problems:
            raise ConfigError("bad training options: " + "; ".join(problems))

    @property
    def extended(self) -> bool:
        """Whether this run trains with the extended objective (Eq. 7)."""
        return bool(self.augment) or self.mix_pairs > 0

    @property
    def out_dir(self) -> Path:
        return Path(self.out).expanduser()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"training config has unknown fields {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], file: str | os.PathLike[str] | None = None) -> TrainConfig:
        """The config of ``file``'s options (:func:`read_config_file`; none without a file) overridden by
        ``options`` (field name -> value: the flags given on the command line). A required option that
        neither gives is one :class:`ConfigError` naming its flag."""
        values = {**(read_config_file(file) if file is not None else {}), **options}
        missing = [option_flag(f, o) for f, o in train_options() if f.name not in values and is_required(f)]
        if missing:
            where = f" (neither the command line nor {file} gives them)" if file is not None else ""
            raise ConfigError(f"the following arguments are required: {', '.join(missing)}{where}")
        try:
            return cls(**values)
        except ConfigError as exc:
            if file is None:
                raise
            raise ConfigError(f"{exc} (options from {file} and the command line)") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **overrides: Any) -> TrainConfig:
        """The config a file gives (:func:`read_config_file`), with ``overrides`` (field name -> value) on top."""
        return cls.from_options(overrides, path)

    def resolved_paths(self) -> dict[str, Any]:
        """:meth:`to_dict` with the path fields made absolute (what ``config.json`` records)."""
        out = self.to_dict()
        for name in self.PATH_FIELDS:
            if out[name] is not None:
                out[name] = str(Path(out[name]).expanduser().resolve())
        return out


def train_options() -> tuple[tuple[dataclasses.Field[Any], Option], ...]:
    """Every :class:`TrainConfig` field with its :class:`Option`, in declaration order."""
    return tuple((f, f.metadata["option"]) for f in dataclasses.fields(TrainConfig))


def option_type(f: dataclasses.Field[Any]) -> type:
    """The scalar type a field's flag parses (``float | None`` -> float, ``str | dict`` -> str)."""
    hint = typing.get_type_hints(TrainConfig)[f.name]
    for candidate in typing.get_args(hint) or (hint,):
        if candidate in (bool, int, float, str):
            return candidate
    return str


TrainConfig.RESUMABLE_CHANGES = tuple(f.name for f, o in train_options() if o.resumable)
TrainConfig.PATH_FIELDS = tuple(f.name for f, o in train_options() if o.path)


def option_flag(f: dataclasses.Field[Any], option: Option) -> str:
    """The command-line flag of field ``f`` (``--batch-size`` unless its option names another)."""
    return option.flag or "--" + f.name.replace("_", "-")


def is_required(f: dataclasses.Field[Any]) -> bool:
    """Whether field ``f`` has no default (a run must be given it: preset, data, captions, out)."""
    return f.default is MISSING and f.default_factory is MISSING


def _plain(value: Any, where: str, problems: list[str]) -> Any:
    """Parsed ``value`` with its mappings (:class:`Pairs`) as dicts; a key given twice is a problem."""
    if isinstance(value, Pairs):
        out: dict[Any, Any] = {}
        for key, item in value:
            key = key if isinstance(key, (str, int, float, bool, type(None))) else repr(key)  # YAML allows [a, b]: 1
            if key in out:
                problems.append(f"{where}{key} is given twice: keep one")
            out[key] = _plain(item, f"{where}{key}.", problems)
        return out
    if isinstance(value, list):
        return [_plain(item, where, problems) for item in value]
    return value


def _unknown_key(key: Any, name: str) -> str:
    """Unknown option ``key`` (``name``: its underscore spelling) with the nearest field names, or the
    field that a flag spelled unlike its field (``--no-cache``) sets."""
    for f, option in train_options():
        if option.flag and option.flag[2:].replace("-", "_") == name:
            value = f" {str(not f.default).lower()}" if option_type(f) is bool else " ..."
            return f"{key!r} (the flag {option.flag}: write {f.name}:{value})"
    close = difflib.get_close_matches(name, [f.name for f in dataclasses.fields(TrainConfig)], n=3, cutoff=0.6)
    return f"{key!r}" + (f" (did you mean {' or '.join(close)}?)" if close else "")


def _file_value(f: dataclasses.Field[Any], option: Option, value: Any, folder: Path) -> tuple[Any, str | None]:
    """A config file's ``value`` for field ``f`` as the field takes it, or ``(None, what is wrong)``."""
    if option.repeat:  # a list of the flag's spellings ("volume:alpha=0.1", "NAME=W") or the field's own form
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            try:
                return option.from_cli(value) if option.from_cli else value, None
            except ConfigError as exc:
                return None, str(exc)
        if f.default_factory is dict:  # target_weights: {name: weight}
            if isinstance(value, dict) and all(isinstance(w, (int, float)) and not isinstance(w, bool)
                                               for w in value.values()):
                return value, None
            return None, f"must be a mapping of name: weight (or a list of NAME=W), got {value!r}"
        # augment: chains of [effect, {param: value}] (a run's config.json) or of the flag's spelling
        if isinstance(value, list) and all(
                isinstance(chain, list) and all(isinstance(step, list) and len(step) == 2 and isinstance(step[0], str)
                                                and isinstance(step[1], (dict, type(None))) for step in chain)
                for chain in value):
            return value, None
        return None, f"must be a list of effect chains like 'volume:alpha=0.35+reverb', got {value!r}"
    if f.name == "preset":
        return (value, None) if isinstance(value, (str, dict)) else (None, f"must be a preset name, got {value!r}")
    hint = typing.get_type_hints(TrainConfig)[f.name]
    if value is None:
        return (None, None) if type(None) in typing.get_args(hint) else (None, "must be given a value, not null")
    kind = option_type(f)
    if kind is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[kind]
        return None, f"must be {expected}, got {value!r}"
    if option.path:  # relative to the file's folder, as a manifest's rows count from the manifest's folder
        path = Path(value).expanduser()
        value = str(path if path.is_absolute() or not value.strip() else folder / path)
    return value, None


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The :class:`TrainConfig` options (field name -> value) a config file gives.

    The file is JSON (``.json``) or YAML (any other suffix), UTF-8 or UTF-16 with a byte-order mark: a
    run's ``config.json`` (its ``train`` section, less the options that say how that call ran: ``resume``
    and ``max_steps``) or a mapping of option names (``batch_size`` or ``batch-size``). Relative paths
    count from the file's folder and ``~`` is expanded. Every problem (unknown options, with the nearest
    names; values of the wrong type; a key given twice) is reported at once in one :class:`ConfigError`
    naming the file; a missing, unreadable or non-mapping file is one line naming it.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"--config {path}: no such file; check the path")
    problems: list[str] = []
    text = read_data_text(path, problems)
    if text is not None:
        data, syntax = parse_json_or_yaml(text, "json" if path.suffix.lower() == ".json" else "yaml")
        problems += syntax
        if not syntax and not isinstance(data, Pairs):
            kind = "empty" if data is None else f"a {type(data).__name__}"
            problems.append(f"the file is {kind}, not a mapping of option: value (or a run's config.json)")
    if problems:  # read_data_text's problems name the file already
        raise ConfigError(f"--config {path}: {problems[0].removeprefix(f'{path}: ')}")
    mapping = _plain(data, "", problems)
    fields = {f.name: (f, o) for f, o in train_options()}
    if isinstance(mapping.get("train"), dict):  # a run's config.json: its options, not how its last call ran
        mapping = {k: v for k, v in mapping["train"].items() if not (k in fields and fields[k][1].per_call)}
    values: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    unknown = []
    for key, value in mapping.items():
        name = str(key).strip().replace("-", "_")
        if name not in fields:
            unknown.append(_unknown_key(key, name))
            continue
        if name in spelled:
            problems.append(f"{name} is given twice ({spelled[name]!r} and {key!r}): keep one")
            continue
        spelled[name] = str(key)
        value, wrong = _file_value(*fields[name], value, path.parent)
        if wrong:
            problems.append(f"{key} {wrong}")
        else:
            values[name] = value
    if unknown:
        problems.insert(0, f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
        if path.name == "config.json":  # runs.CONFIG_FILE (runs loads torch); e.g. <run>/best/config.json
            problems.insert(1, "a run's config.json (in the run folder, not best/ or last/) has a 'train' section")
    if problems:
        raise ConfigError(f"--config {path}: " + "; ".join(problems))
    return values


def parse_augment(spec: str) -> list[list[Any]]:
    """One transformation chain from the command line.

    ``volume:alpha=0.1`` is one effect; ``reverb`` uses the effect's defaults;
    ``volume:alpha=0.35+reverb:room_size=0.8`` chains effects (applied left to right).
    Numbers are parsed as numbers. Returns ``[[name, {param: value}], ...]``.
    """
    chain: list[list[Any]] = []
    for part in str(spec).split("+"):
        part = part.strip()
        if not part:
            raise ConfigError(f"--augment {spec!r}: empty effect; write e.g. volume:alpha=0.1 or reverb")
        name, _, rest = part.partition(":")
        params: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"--augment {spec!r}: parameter {item!r} must be key=value, e.g. alpha=0.1")
            try:
                params[key.strip()] = float(value)
            except ValueError:
                params[key.strip()] = value.strip()
        chain.append([name.strip(), params])
    return chain
