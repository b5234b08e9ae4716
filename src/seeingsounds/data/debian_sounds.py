"""A labelled manifest of real sounds from Debian packages (offline data for tests and demos).

Sources (install with apt-get): ``tuxpaint-stamps-default`` (object sounds of Tux Paint stamps,
and the English spoken descriptions ``*_desc.ogg``), ``sonic-pi-samples`` (CC0 samples from
freesound.org, labelled by name) and ``sound-theme-freedesktop`` (desktop event sounds).

Labels come from a fixed, reviewable rule table (:data:`RULES`): each rule maps file paths
(relative to the package folder, without extension) to a label; the first matching rule wins and
files no rule matches are left out. Related objects are grouped where single objects have one
clip each (all Tux Paint birds -> ``bird``). Captions are one class-level sentence per label,
made by :func:`caption_for`.

    python -m seeingsounds.data.debian_sounds OUT_DIR [--min-per-class 3] [--max-per-class N] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from seeingsounds.data.manifest import read_manifest, write_manifest
from seeingsounds.errors import DatasetError
from seeingsounds.paths import atomic_write_json

#: where each Debian package puts its sounds
SOURCES: dict[str, Path] = {
    "tuxpaint": Path("/usr/share/tuxpaint/stamps"),
    "sonic-pi": Path("/usr/share/sonic-pi/samples"),
    "freedesktop": Path("/usr/share/sounds/freedesktop/stereo"),
}
#: the Debian package that provides each source
PACKAGES = {"tuxpaint": "tuxpaint-stamps-default", "sonic-pi": "sonic-pi-samples",
            "freedesktop": "sound-theme-freedesktop"}
AUDIO_EXTENSIONS = (".ogg", ".oga", ".flac", ".wav")


@dataclass(frozen=True)
class Rule:
    """Files of ``source`` whose relative path (no extension) fully matches ``pattern`` get ``label``.

    ``cap`` keeps at most that many of the rule's files (seeded sample) so one rule cannot swamp
    the manifest.
    """

    source: str
    pattern: str
    label: str
    cap: int | None = None


_T, _S, _F = "tuxpaint", "sonic-pi", "freedesktop"
_NOT_SPOKEN = r"(?!.*_desc)(?!symbols/(alphabets|math)/)"  # Tux Paint object sounds, not speech

RULES: tuple[Rule, ...] = (
    # --- Tux Paint object sounds (one file per stamp; grouped into kinds) ---
    Rule(_T, _NOT_SPOKEN + r"animals/birds/.*", "bird"),
    Rule(_T, _NOT_SPOKEN + r"animals/insects/.*", "buzzing insect"),
    Rule(_T, _NOT_SPOKEN + r"animals/mammals/bovines/(bison|bull|cow|cow_white)", "cow"),
    Rule(_T, _NOT_SPOKEN + r"animals/mammals/bovines/(goat|mountaingoat|ram|sheep|sheep_lamb)", "sheep"),
    Rule(_T, _NOT_SPOKEN + r"animals/mammals/pig.*", "pig"),
    Rule(_T, _NOT_SPOKEN + r"animals/mammals/equines/.*", "horse"),
    Rule(_T, _NOT_SPOKEN + r"animals/mammals/deer/.*", "deer"),
    Rule(_T, _NOT_SPOKEN + r"animals/mammals/aquatic/.*", "marine mammal"),
    Rule(_T, _NOT_SPOKEN + r"(animals/mammals/cats/.*|seasonal/halloween/blackcat)", "cat"),
    Rule(_T, _NOT_SPOKEN + r"animals/mammals/rodents/.*", "rodent"),
    Rule(_T, _NOT_SPOKEN + r"household/tools/.*", "hand tool"),
    Rule(_T, _NOT_SPOKEN + r"seasonal/hanukkah/dreydl-.*", "spinning top"),
    Rule(_T, _NOT_SPOKEN + r"symbols/faces/.*", "voice exclamation"),
    Rule(_T, _NOT_SPOKEN + r"hobbies/camera_35mm", "camera shutter"),
    Rule(_T, _NOT_SPOKEN + r"hobbies/music/percussion/cymbal_crash", "cymbal"),
    Rule(_T, _NOT_SPOKEN + r"hobbies/music/percussion/drum_tomtom_floor", "tom drum"),
    Rule(_T, r".*_desc", "speech", cap=16),  # English spoken descriptions
    # --- Sonic Pi samples (CC0), by name ---
    Rule(_S, r"(bd_.*|drum_bass_.*|drum_heavy_kick|elec_hollow_kick|elec_soft_kick)", "kick drum"),
    Rule(_S, r"(sn_.*|drum_snare_.*|elec_.*snare)", "snare drum"),
    Rule(_S, r"(drum_cymbal_.*|drum_splash_.*|elec_cymbal)", "cymbal"),
    Rule(_S, r"(drum_tom_.*|elec_fuzz_tom)", "tom drum"),
    Rule(_S, r"(perc_bell2?|elec_bell|elec_chime|elec_triangle|drum_cowbell)", "bell"),
    Rule(_S, r"tabla_.*", "tabla"),
    Rule(_S, r"bass_.*", "synth bass"),
    Rule(_S, r"(ambi_swoosh|ambi_dark_woosh|perc_swoosh|perc_swash)", "whoosh"),
    Rule(_S, r"ambi_(drone|haunted_hum|soft_buzz|glass_hum|glass_rub|lunar_land|sauna)", "ambient drone"),
    Rule(_S, r"elec_(beep|blip2?|blup|ping|plip|pop|tick|twip|flip)", "electronic blip"),
    Rule(_S, r"glitch_perc\d", "glitch percussion"),
    Rule(_S, r"(mehackit_robot\d|glitch_robot\d)", "robot voice"),
    Rule(_S, r"mehackit_phone\d", "telephone"),
    Rule(_S, r"loop_(amen|amen_full|breakbeat|compus|mika|perc1|perc2|safari|tabla|garzul)", "drum loop"),
    Rule(_S, r"guit_.*", "electric guitar"),
    Rule(_S, r"vinyl_(backspin|rewind|scratch)", "record scratch"),
    Rule(_S, r"(perc_impact\d|misc_cineboom)", "impact"),
    Rule(_S, r"misc_crow", "bird"),
    # --- freedesktop sound theme ---
    Rule(_F, r"audio-channel-.*", "speech"),
    Rule(_F, r"phone-.*", "telephone"),
    Rule(_F, r"(camera-shutter|screen-capture)", "camera shutter"),
    Rule(_F, r"bell", "bell"),
    Rule(_F, r"(message|message-new-instant|complete|window-attention|window-question|dialog-.*|device-.*"
             r"|network-connectivity-.*|power-.*|service-.*|suspend-error|audio-volume-change)", "notification chime"),
)

#: the picture concept (an id of :data:`seeingsounds.data.pictures.CONCEPTS`) that shows what a
#: label's clips sound like (loosely where a rule groups kin: a donkey and a zebra under "horse",
#: goats under "sheep"). Left out: labels whose clips have different pictures ("cat" holds a lion
#: and a tiger, "rodent" a beaver and a rabbit, "hand tool" a hammer and a saw) and labels with no
#: picture (drones, blips, glitches, whooshes, scratches, cymbals).
PICTURE_CONCEPTS: dict[str, str] = {
    "bird": "bird", "buzzing insect": "bee", "cow": "cow", "sheep": "sheep", "pig": "pig", "horse": "horse",
    "deer": "deer", "camera shutter": "camera",
    "kick drum": "drum", "snare drum": "drum", "tom drum": "drum", "tabla": "long_drum", "bell": "bell",
    "electric guitar": "guitar", "telephone": "telephone", "notification chime": "mobile_phone",
    "robot voice": "robot", "speech": "speaking", "impact": "collision",
}

#: labels that read without an article ("the sound of speech")
_MASS_NOUNS = {"speech"}


def caption_for(label: str) -> str:
    """Class-level caption by rule: ``"the sound of a <label>"`` (``an`` before a vowel, none for mass nouns)."""
    words = label.replace("_", " ").strip()
    if words in _MASS_NOUNS:
        return f"the sound of {words}"
    article = "an" if words[:1].lower() in "aeiou" else "a"
    return f"the sound of {article} {words}"


def scan_debian_sounds(sources: Mapping[str, Path] | None = None, rules: Sequence[Rule] = RULES, *,
                       seed: int = 0) -> dict[str, list[Path]]:
    """``{label: [files]}`` for every file a rule matches (missing source folders are skipped)."""
    sources = dict(SOURCES if sources is None else sources)
    files: dict[str, list[tuple[str, Path]]] = {}
    for name, root in sources.items():
        root = Path(root)
        # symbolic links are skipped: they repeat a sound already listed (and would leak across splits)
        found = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
                       and not p.is_symlink()) if root.is_dir() else []
        files[name] = [(p.relative_to(root).with_suffix("").as_posix(), p) for p in found]
    compiled = [(r, re.compile(r.pattern)) for r in rules]
    taken: set[Path] = set()
    per_rule: dict[int, list[Path]] = defaultdict(list)
    for name, entries in files.items():
        for rel, path in entries:
            for i, (rule, rx) in enumerate(compiled):
                if rule.source == name and rx.fullmatch(rel):
                    per_rule[i].append(path)
                    taken.add(path)
                    break
    rng = random.Random(seed)
    out: dict[str, list[Path]] = defaultdict(list)
    for i, (rule, _) in enumerate(compiled):
        paths = per_rule.get(i, [])
        if rule.cap is not None and len(paths) > rule.cap:
            paths = sorted(rng.sample(paths, rule.cap))
        out[rule.label].extend(paths)
    return {label: sorted(paths) for label, paths in sorted(out.items()) if paths}


def build_debian_manifest(out_dir: str | Path, *, min_per_class: int = 3, max_per_class: int | None = None,
                          seed: int = 0, sources: Mapping[str, Path] | None = None) -> tuple[Path, Path]:
    """Write ``manifest.csv`` (``path,label``) and ``captions.json`` (``{label: caption}``) to ``out_dir``.

    Only classes with at least ``min_per_class`` clips are kept; ``max_per_class`` keeps a seeded
    sample of larger classes. Returns ``(manifest_path, captions_path)``.
    """
    if min_per_class < 1:
        raise DatasetError([f"min_per_class must be >= 1, got {min_per_class}"], "bad manifest options")
    if max_per_class is not None and max_per_class < min_per_class:
        raise DatasetError([f"max_per_class ({max_per_class}) is below min_per_class ({min_per_class})"], "bad manifest options")
    classes = scan_debian_sounds(sources, seed=seed)
    rng = random.Random(seed)
    kept: dict[str, list[Path]] = {}
    for label, paths in classes.items():
        if len(paths) < min_per_class:
            continue
        if max_per_class is not None and len(paths) > max_per_class:
            paths = sorted(rng.sample(paths, max_per_class))
        kept[label] = paths
    if not kept:
        used = sources if sources is not None else SOURCES
        missing = [f"{PACKAGES.get(n, n)} ({p})" for n, p in used.items() if not Path(p).is_dir()]
        raise DatasetError(
            [f"no class has >= {min_per_class} clips"] + [f"not installed: {m}" for m in missing],
            "no Debian sounds found: apt-get install " + " ".join(PACKAGES.values()),
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = write_manifest(out / "manifest.csv", [(p, label) for label, paths in kept.items() for p in paths])
    captions = {label: caption_for(label) for label in kept}
    captions_path = atomic_write_json(out / "captions.json", captions)
    return manifest, captions_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seeingsounds.data.debian_sounds", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--min-per-class", type=int, default=3)
    parser.add_argument("--max-per-class", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    manifest, captions = build_debian_manifest(args.out_dir, min_per_class=args.min_per_class,
                                               max_per_class=args.max_per_class, seed=args.seed)
    labels = [str(row["label"]) for row in read_manifest(manifest, [])]
    print(f"{len(labels)} clips in {len(set(labels))} classes -> {manifest}, {captions}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
