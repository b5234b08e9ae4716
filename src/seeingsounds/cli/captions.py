"""``seeingsounds captions``: write class captions from labels, show the augmented caption set.

    seeingsounds captions init --labels labels.txt -o captions.json [--engine llm --model gpt-4o]
    seeingsounds captions show captions.json --descriptions low-volume,reverberant low-volume+echoing --mix -o aug.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

COMMAND = "captions"
HELP = "write class captions from labels (init) or show the edited/fused caption set (show)"


def _engine_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("caption engine")
    g.add_argument("--engine", choices=("template", "llm"), default="template",
                   help="template: offline and deterministic (default); llm: an OpenAI-compatible endpoint "
                        "(its API key in the OPENAI_API_KEY environment variable)")
    g.add_argument("--base-url", default=None, help="llm: endpoint base URL (default https://api.openai.com/v1)")
    g.add_argument("--model", default=None, help="llm: chat model (default gpt-4o, as in the paper)")
    g.add_argument("--temperature", type=float, default=None, help="llm: sampling temperature (default 0: reproducible edits)")
    g.add_argument("--timeout", type=float, default=None,
                   help="llm: seconds for one whole request, reply included (default 30)")
    g.add_argument("--attempts", type=int, default=None,
                   help="llm: tries per caption before giving up (default 3; retries back off 1 s, 2 s, ...)")
    g.add_argument("--cache", type=Path, default=None,
                   help="llm: cache of produced captions, JSON Lines appended per caption "
                        "(default: beside the output, *.llm-cache.jsonl)")
    g.add_argument("--fallback", action="store_true",
                   help="llm: when the endpoint keeps failing, use the template caption and warn")
    g.add_argument("--prompts", type=Path, default=None,
                   help="llm: folder with edit.txt / fuse.txt / class_caption.txt replacing the shipped system prompts")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="captions_action", metavar="ACTION", required=True)
    init = sub.add_parser("init", help="write a captions file from bare class labels",
                          description="Write a captions file (label -> caption) from a labels file.")
    init.add_argument("--labels", type=Path, required=True,
                      help="text file, one class label per line (blank lines and # comments ignored)")
    init.add_argument("-o", "--output", type=Path, required=True, help="captions file to write (.json, .yaml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing output file")
    _engine_arguments(init)
    show = sub.add_parser("show", help="print class captions and their edited/fused versions",
                          description="Print the class captions and the augmented caption set (Eq. 7).")
    show.add_argument("captions", type=Path, help="captions file (.json, .yaml)")
    show.add_argument("--descriptions", nargs="+", action="extend", default=[], metavar="D[,D...]",
                      help="transformation descriptions: commas separate effects, '+' chains them in order "
                           "(low-volume+reverberant); 'all' = the ten standard descriptions")
    show.add_argument("--mix", action="store_true", help="also fuse every pair of classes")
    show.add_argument("-o", "--output", type=Path, default=None, help="write the augmented caption set as JSON")
    show.add_argument("--force", action="store_true", help="overwrite an existing output file")
    _engine_arguments(show)


def _editor(args: argparse.Namespace, beside: Path, *, inputs: list[Path], output: Path | None):
    """The caption engine of ``args``; with ``llm``, its cache is checked against ``inputs`` and
    ``output`` (one file cannot be both: the cache is read and appended to) before it is opened."""
    from seeingsounds.captions.edit import get_editor
    from seeingsounds.errors import ConfigError
    from seeingsounds.paths import check_output_file

    llm_only = {"--base-url": args.base_url, "--model": args.model, "--temperature": args.temperature,
                "--timeout": args.timeout, "--attempts": args.attempts, "--cache": args.cache,
                "--prompts": args.prompts, "--fallback": args.fallback or None}
    if args.engine == "template":
        used = [name for name, value in llm_only.items() if value is not None]
        if used:
            raise ConfigError(f"{', '.join(used)} only apply to --engine llm")
        return get_editor("template")
    options = {k: v for k, v in {"timeout": args.timeout, "max_attempts": args.attempts}.items() if v is not None}
    prompt_files: list[Path] = []
    if args.prompts is not None:
        if not args.prompts.is_dir():
            raise ConfigError(f"--prompts {args.prompts} is not a folder")
        found = {op: args.prompts / f"{op}.txt" for op in ("edit", "fuse", "class_caption")}
        prompt_files = [p for p in found.values() if p.is_file()]
        options["system_prompts"] = {op: p.read_text(encoding="utf-8") for op, p in found.items() if p.is_file()}
        if not options["system_prompts"]:
            raise ConfigError(f"--prompts {args.prompts} holds none of edit.txt, fuse.txt, class_caption.txt")
    cache = check_output_file(args.cache or default_cache_path(beside), inputs=[*inputs, *prompt_files],
                              what="caption cache (--cache)")
    if output is not None:
        check_output_file(output, inputs=[cache], what="output file (-o)")
    return get_editor("llm", cache_path=cache, temperature=args.temperature, base_url=args.base_url,
                      model=args.model, fallback="template" if args.fallback else None, **options)


def default_cache_path(beside: Path) -> Path:
    """``<stem>.llm-cache.jsonl`` beside ``beside``."""
    return beside.with_name(f"{beside.stem}.llm-cache.jsonl")


def _report_fallbacks(editor) -> None:
    count = getattr(editor, "fallback_count", 0)
    if count:
        print(f"warning: {count} caption(s) came from the template engine because the endpoint failed "
              "(rerun to ask it again)", file=sys.stderr)


def _check_new_or_forced(output: Path, force: bool) -> None:
    """An existing ``-o`` file (another captions file, a manifest, notes) is replaced only with ``--force``."""
    from seeingsounds.errors import ConfigError

    if output.exists() and not output.is_dir() and not force:
        raise ConfigError(f"{output} exists: pass --force to overwrite it")


def _init(args: argparse.Namespace) -> int:
    from seeingsounds.captions.store import save_captions
    from seeingsounds.errors import ConfigError
    from seeingsounds.paths import check_output_file

    if args.output.suffix.lower() not in (".json", ".yaml", ".yml"):
        raise ConfigError(f"-o {args.output}: name the captions file *.json, *.yaml or *.yml")
    _check_new_or_forced(args.output, args.force)
    check_output_file(args.output, inputs=[args.labels], what="output file (-o)")
    from seeingsounds.captions.store import read_labels

    labels = read_labels(args.labels)
    editor = _editor(args, args.output, inputs=[args.labels], output=args.output)
    captions = {}
    for label in labels:
        captions[label] = editor.class_caption(label)
        print(f"{label}: {captions[label]}")
    save_captions(args.output, captions)
    _report_fallbacks(editor)
    print(f"wrote {len(captions)} class captions to {args.output}", file=sys.stderr)
    return 0


def parse_descriptions(items: list[str]) -> list[tuple[str, ...]]:
    """``["low-volume,reverberant", "low-volume+echoing"]`` -> one chain per comma-separated item."""
    from seeingsounds.captions.templates import standard_descriptions
    from seeingsounds.errors import ConfigError

    chains: list[tuple[str, ...]] = []
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            if part.strip().lower() == "all":
                chains.extend((d,) for d in standard_descriptions())
                continue
            chain = tuple(d.strip() for d in part.split("+"))
            if not all(chain):
                raise ConfigError(f"--descriptions {part!r}: an empty description around '+'")
            chains.append(chain)
    return list(dict.fromkeys(chains))


def _show(args: argparse.Namespace) -> int:
    from seeingsounds.captions.edit import all_pairs, augmented_captions
    from seeingsounds.captions.store import load_captions
    from seeingsounds.captions.templates import normalise_description, standard_descriptions
    from seeingsounds.paths import check_output_file

    if args.output is not None:
        check_output_file(args.output, inputs=[args.captions], what="output file (-o)")
        _check_new_or_forced(args.output, args.force)
    class_captions = load_captions(args.captions)
    chains = parse_descriptions(args.descriptions)
    descriptions = standard_descriptions()  # effects registered after import are listed too
    known = {normalise_description(d) for d in descriptions}
    for d in dict.fromkeys(d for chain in chains for d in chain):
        if normalise_description(d) not in known:
            print(f"note: {d!r} is not one of the effects' descriptions ({', '.join(descriptions)})",
                  file=sys.stderr)
    editor = _editor(args, args.output or args.captions, inputs=[args.captions], output=args.output)
    pairs = all_pairs(list(class_captions)) if args.mix else []
    aug = augmented_captions(class_captions, chains, editor, mix_pairs=pairs)
    print(f"class captions ({len(aug.original)}):")
    for label, caption in aug.original.items():
        print(f"  {label}: {caption}")
    if aug.edited:
        print(f"edited captions ({len(aug.edited)}):")
        for (label, chain), caption in aug.edited.items():
            print(f"  {label} [{'+'.join(chain)}]: {caption}")
    if aug.fused:
        print(f"fused captions ({len(aug.fused)}):")
        for (u, v), caption in aug.fused.items():
            print(f"  {u} + {v}: {caption}")
    print(f"{len(aug.all_captions())} distinct captions")
    _report_fallbacks(editor)
    if args.output is not None:
        aug.save(args.output)
        print(f"wrote the augmented caption set to {args.output}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    return _init(args) if args.captions_action == "init" else _show(args)
