"""Captioned pictures from packages: one small picture per concept, in several emoji styles.

Each :class:`Picture` is a concept id (``"dog"``), an RGB ``uint8`` array ``[size, size, 3]`` of
the concept's emoji on a white background (centred, aspect kept), and a deterministic tuple of
captions (``"a dog"``, ``"the sound of a dog"``, ``"a dog barking"``, ``"dog face"``, keywords).

The concept vocabulary is :data:`CONCEPTS`: one emoji per concept, chosen for things that make a
sound (animals, instruments, vehicles, weather, household objects, people's sounds) plus some
everyday things around them, so that demo sounds have pictures and a judge has distractors.
Animals use their face emoji where one exists (a face reads best at 32 px).

Styles (:data:`STYLES`; add a loader there for more):

* ``"noto"``: Debian ``fonts-noto-color-emoji`` (the colour bitmap font), rendered with Pillow.
  Install: ``apt-get install fonts-noto-color-emoji`` (``make test`` does it).
* ``"twemoji"`` / ``"google"``: npm ``emoji-datasource-twitter`` / ``emoji-datasource-google``
  16.0.0 (64x64 PNGs + ``emoji.json``), fetched with ``npm pack`` into the SeeingSounds cache
  folder on first use (:func:`emoji_datasource_folder`), never shipped with this library.
* ``"openmoji"``: npm ``openmoji`` 17.0.0 (SVG + ``data/openmoji.json``), fetched the same way; its
  colour SVGs are rasterised once, with ``cairosvg`` (the ``judge`` extra: ``pip install
  'seeingsounds[judge]'``; needs the system's libcairo2), to 128 px PNGs in the cache folder
  (:func:`openmoji_pngs`).
* ``"emojione"``: EmojiOne 2 (64 px PNGs) from the Debian package ``ruby-gemojione``, read from the
  system at run time (``apt-get install ruby-gemojione``); 126 of the 144 concepts.

LICENSES (pictures are read from the installed package at run time, never copied into this
repository):

* Noto Color Emoji: SIL Open Font License 1.1 (font), images Apache-2.0 (Google).
* Twemoji graphics: Copyright Twitter, Inc and other contributors, CC-BY 4.0
  (https://creativecommons.org/licenses/by/4.0/); emoji-datasource data: MIT (Cal Henderson).
* emoji-datasource-google images: Apache-2.0 (Google Noto); data MIT.
* OpenMoji: "All emojis designed by OpenMoji - the open-source emoji and icon project. License:
  CC BY-SA 4.0" (https://openmoji.org/, https://creativecommons.org/licenses/by-sa/4.0/). Neither the
  SVGs nor their rasterised PNGs are ever copied into this repository.
* EmojiOne 2 (Debian ``ruby-gemojione`` 3.3.0 assets): Copyright 2014 Ranks.com Inc., CC BY-SA 4.0
  (https://creativecommons.org/licenses/by-sa/4.0/); read from the system, never copied here.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from seeingsounds.errors import ConfigError, DatasetError
from seeingsounds.paths import ensure_writable_dir, home

logger = logging.getLogger(__name__)

NOTO_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
NOTO_PACKAGE = "fonts-noto-color-emoji"
#: the only size at which the Noto colour bitmap font loads (its strikes are 109 px)
NOTO_FONT_SIZE = 109
EMOJI_DATASOURCE_VERSION = "16.0.0"
#: npm package of each npm-backed style
NPM_PACKAGES = {"twemoji": "emoji-datasource-twitter", "google": "emoji-datasource-google"}
OPENMOJI_PACKAGE = "openmoji"
OPENMOJI_VERSION = "17.0.0"
#: side of the PNGs OpenMoji's SVGs are rasterised to (once, in the cache folder)
OPENMOJI_RASTER_SIZE = 128
EMOJIONE_PACKAGE = "ruby-gemojione"
EMOJIONE_PNG = Path("/usr/share/rubygems-integration/all/gems/gemojione-3.3.0/assets/png")
WHITE = (255, 255, 255)
#: names of Emoji 15.0 characters in the vocabulary, which Python 3.11's Unicode 14 database lacks
#: (kept here so captions are the same on every Python)
_UNICODE_15_NAMES = {"\U0001FACF": "donkey", "\U0001FABF": "goose", "\U0001FA88": "flute", "\U0001FA87": "maracas"}


@dataclass(frozen=True)
class Concept:
    """One thing a picture shows.

    ``phrase`` is the noun phrase with its article ("a dog", "rain"); ``sound`` what it sounds
    like ("a dog barking", empty when nothing fits); ``keywords`` other words for it.
    """

    id: str
    emoji: str
    phrase: str
    sound: str = ""
    keywords: tuple[str, ...] = ()
    group: str = ""

    @property
    def name(self) -> str:
        return self.id.replace("_", " ")

    @property
    def unicode_name(self) -> str:
        """The emoji's Unicode name in lower case ("dog face"); variation selectors skipped."""
        return " ".join(_UNICODE_15_NAMES.get(ch) or unicodedata.name(ch).lower() for ch in self.emoji if ch != "\ufe0f")


def _c(group: str, rows: Iterable[tuple[str, str, str, str, str]]) -> list[Concept]:
    return [Concept(i, e, p, s, tuple(k.split(",")) if k else (), group) for i, e, p, s, k in rows]


#: the concept vocabulary (id, emoji, noun phrase, sound phrase, comma-separated keywords)
CONCEPTS: tuple[Concept, ...] = tuple(
    _c("animals", [
        ("dog", "\U0001F436", "a dog", "a dog barking", "puppy,pet,woof"),
        ("cat", "\U0001F431", "a cat", "a cat meowing", "kitten,pet,meow"),
        ("cow", "\U0001F42E", "a cow", "a cow mooing", "cattle,bull,farm animal"),
        ("pig", "\U0001F437", "a pig", "a pig oinking", "hog,piglet,farm animal"),
        ("horse", "\U0001F434", "a horse", "a horse neighing", "pony,stallion,galloping"),
        ("sheep", "\U0001F411", "a sheep", "a sheep bleating", "lamb,ewe,wool"),
        ("goat", "\U0001F410", "a goat", "a goat bleating", "billy goat,kid"),
        ("donkey", "\U0001FACF", "a donkey", "a donkey braying", "mule,ass"),
        ("rooster", "\U0001F413", "a rooster", "a rooster crowing", "cockerel,cock-a-doodle-doo"),
        ("chicken", "\U0001F414", "a chicken", "a chicken clucking", "hen,poultry"),
        ("duck", "\U0001F986", "a duck", "a duck quacking", "mallard,quack"),
        ("goose", "\U0001FABF", "a goose", "a goose honking", "gander,honk"),
        ("turkey", "\U0001F983", "a turkey", "a turkey gobbling", "gobbler"),
        ("bird", "\U0001F426", "a bird", "a bird singing", "songbird,tweet,chirping"),
        ("owl", "\U0001F989", "an owl", "an owl hooting", "hoot,night bird"),
        ("eagle", "\U0001F985", "an eagle", "an eagle screeching", "bird of prey,hawk"),
        ("parrot", "\U0001F99C", "a parrot", "a parrot squawking", "macaw,talking bird"),
        ("penguin", "\U0001F427", "a penguin", "a penguin calling", "antarctic bird"),
        ("frog", "\U0001F438", "a frog", "a frog croaking", "toad,ribbit"),
        ("lion", "\U0001F981", "a lion", "a lion roaring", "big cat,roar"),
        ("tiger", "\U0001F42F", "a tiger", "a tiger growling", "big cat,stripes"),
        ("wolf", "\U0001F43A", "a wolf", "a wolf howling", "howl,wild dog"),
        ("fox", "\U0001F98A", "a fox", "a fox yelping", "red fox,vixen"),
        ("bear", "\U0001F43B", "a bear", "a bear growling", "grizzly,brown bear"),
        ("monkey", "\U0001F435", "a monkey", "a monkey screeching", "ape,chimpanzee"),
        ("gorilla", "\U0001F98D", "a gorilla", "a gorilla beating its chest", "great ape"),
        ("elephant", "\U0001F418", "an elephant", "an elephant trumpeting", "trunk,tusks"),
        ("mouse", "\U0001F42D", "a mouse", "a mouse squeaking", "rodent,rat,squeak"),
        ("rabbit", "\U0001F430", "a rabbit", "a rabbit thumping", "bunny,hare"),
        ("deer", "\U0001F98C", "a deer", "a deer bellowing", "stag,reindeer,antlers"),
        ("camel", "\U0001F42B", "a camel", "a camel grunting", "dromedary,desert animal"),
        ("snake", "\U0001F40D", "a snake", "a snake hissing", "serpent,hiss"),
        ("bee", "\U0001F41D", "a bee", "a bee buzzing", "honeybee,buzzing insect"),
        ("mosquito", "\U0001F99F", "a mosquito", "a mosquito whining", "gnat,buzzing insect"),
        ("fly", "\U0001FAB0", "a fly", "a fly buzzing", "housefly,buzzing insect"),
        ("cricket", "\U0001F997", "a cricket", "a cricket chirping", "grasshopper,insect"),
        ("whale", "\U0001F433", "a whale", "a whale singing", "spouting whale,marine mammal"),
        ("dolphin", "\U0001F42C", "a dolphin", "a dolphin clicking", "porpoise,marine mammal"),
        ("seal", "\U0001F9AD", "a seal", "a seal barking", "sea lion,marine mammal"),
        ("bat", "\U0001F987", "a bat", "a bat squeaking", "flying mammal,vampire bat"),
        ("fish", "\U0001F41F", "a fish", "a fish splashing", "goldfish,swimming fish"),
        ("turtle", "\U0001F422", "a turtle", "a turtle hissing", "tortoise,shell"),
    ])
    + _c("nature", [
        ("fire", "\U0001F525", "fire", "fire crackling", "flames,campfire,burning"),
        ("rain", "\U0001F327", "rain", "rain falling", "rainy weather,raincloud,shower"),
        ("thunderstorm", "\u26C8", "a thunderstorm", "thunder rumbling", "thunder,storm,lightning"),
        ("lightning", "\u26A1", "lightning", "a thunderclap", "lightning bolt,electricity,zap"),
        ("wind", "\U0001F32C", "wind", "wind blowing", "gust,breeze,wind face"),
        ("ocean_waves", "\U0001F30A", "ocean waves", "waves crashing", "sea,surf,water wave"),
        ("volcano", "\U0001F30B", "a volcano", "a volcano erupting", "eruption,lava"),
        ("tornado", "\U0001F32A", "a tornado", "a tornado roaring", "twister,cyclone"),
        ("water_drop", "\U0001F4A7", "a water drop", "water dripping", "droplet,drip"),
        ("snowman", "\u26C4", "a snowman", "snow crunching", "snow,winter"),
        ("sun", "\u2600", "the sun", "", "sunny,sunshine"),
        ("tree", "\U0001F333", "a tree", "leaves rustling", "deciduous tree,forest,leaves"),
    ])
    + _c("music", [
        ("bell", "\U0001F514", "a bell", "a bell ringing", "ding,chime,church bell"),
        ("drum", "\U0001F941", "a drum", "a drum beating", "snare drum,drumsticks,percussion"),
        ("long_drum", "\U0001FA98", "a long drum", "hand drums playing", "tabla,bongo,conga"),
        ("guitar", "\U0001F3B8", "a guitar", "a guitar strumming", "electric guitar,rock music"),
        ("violin", "\U0001F3BB", "a violin", "a violin playing", "fiddle,string instrument"),
        ("piano", "\U0001F3B9", "a piano", "a piano playing", "keyboard,musical keyboard,keys"),
        ("trumpet", "\U0001F3BA", "a trumpet", "a trumpet blaring", "brass,horn,fanfare"),
        ("saxophone", "\U0001F3B7", "a saxophone", "a saxophone playing", "sax,jazz"),
        ("accordion", "\U0001FA97", "an accordion", "an accordion playing", "squeezebox,concertina"),
        ("banjo", "\U0001FA95", "a banjo", "a banjo plucking", "bluegrass,string instrument"),
        ("flute", "\U0001FA88", "a flute", "a flute playing", "recorder,fife"),
        ("maracas", "\U0001FA87", "maracas", "maracas shaking", "shaker,rattle,percussion"),
        ("microphone", "\U0001F3A4", "a microphone", "someone singing", "karaoke,singer,mic"),
        ("headphones", "\U0001F3A7", "headphones", "music playing", "headphone,earphones,listening"),
        ("radio", "\U0001F4FB", "a radio", "a radio playing", "wireless,broadcast"),
        ("postal_horn", "\U0001F4EF", "a horn", "a horn blowing", "postal horn,bugle"),
    ])
    + _c("vehicles", [
        ("train", "\U0001F682", "a train", "a train whistling", "steam locomotive,railway,choo choo"),
        ("car", "\U0001F697", "a car", "a car engine", "automobile,traffic,honking"),
        ("police_car", "\U0001F693", "a police car", "a police siren", "cop car,patrol car"),
        ("ambulance", "\U0001F691", "an ambulance", "an ambulance siren", "emergency vehicle,paramedic"),
        ("fire_engine", "\U0001F692", "a fire engine", "a fire truck siren", "fire truck,firefighters"),
        ("bus", "\U0001F68C", "a bus", "a bus engine", "coach,public transport"),
        ("truck", "\U0001F69A", "a truck", "a truck rumbling", "lorry,delivery truck"),
        ("tractor", "\U0001F69C", "a tractor", "a tractor engine", "farm vehicle"),
        ("racing_car", "\U0001F3CE", "a racing car", "a racing car roaring", "race car,formula one"),
        ("motorcycle", "\U0001F3CD", "a motorcycle", "a motorcycle revving", "motorbike,biker"),
        ("bicycle", "\U0001F6B2", "a bicycle", "a bicycle bell", "bike,cycling"),
        ("airplane", "\u2708", "an airplane", "an airplane flying overhead", "aeroplane,jet,plane"),
        ("helicopter", "\U0001F681", "a helicopter", "a helicopter hovering", "chopper,rotor"),
        ("rocket", "\U0001F680", "a rocket", "a rocket launching", "spaceship,launch"),
        ("ship", "\U0001F6A2", "a ship", "a ship horn", "boat,ocean liner,foghorn"),
        ("speedboat", "\U0001F6A4", "a speedboat", "a motorboat engine", "motorboat,boat"),
        ("siren", "\U0001F6A8", "a siren", "a siren wailing", "alarm light,police light,emergency"),
    ])
    + _c("objects", [
        ("door", "\U0001F6AA", "a door", "a door slamming", "doorway,knocking,creaking door"),
        ("alarm_clock", "\u23F0", "an alarm clock", "an alarm clock ringing", "alarm,wake up"),
        ("clock", "\U0001F570", "a clock", "a clock ticking", "mantelpiece clock,tick tock"),
        ("telephone", "\u260E", "a telephone", "a telephone ringing", "phone,landline"),
        ("mobile_phone", "\U0001F4F1", "a mobile phone", "a phone notification", "smartphone,cell phone"),
        ("hammer", "\U0001F528", "a hammer", "a hammer hitting a nail", "hammering,hand tool"),
        ("saw", "\U0001FA9A", "a saw", "a saw cutting wood", "carpentry saw,sawing,hand tool"),
        ("axe", "\U0001FA93", "an axe", "an axe chopping wood", "hatchet,chopping"),
        ("scissors", "\u2702", "scissors", "scissors cutting", "cutting,snip"),
        ("key", "\U0001F511", "a key", "keys jingling", "door key,lock"),
        ("toilet", "\U0001F6BD", "a toilet", "a toilet flushing", "flush,lavatory"),
        ("shower", "\U0001F6BF", "a shower", "a shower running", "running water,bathroom"),
        ("broom", "\U0001F9F9", "a broom", "a broom sweeping", "sweeping,cleaning"),
        ("camera", "\U0001F4F7", "a camera", "a camera shutter", "photo,snapshot,camera shutter"),
        ("television", "\U0001F4FA", "a television", "a television playing", "tv,screen"),
        ("laptop", "\U0001F4BB", "a laptop", "typing on a laptop", "computer,notebook"),
        ("keyboard", "\u2328", "a keyboard", "typing on a keyboard", "computer keyboard,typing"),
        ("printer", "\U0001F5A8", "a printer", "a printer printing", "printing,office"),
        ("bomb", "\U0001F4A3", "a bomb", "an explosion", "explosive,blast"),
        ("collision", "\U0001F4A5", "a crash", "a loud bang", "collision,boom,impact,explosion"),
        ("fireworks", "\U0001F386", "fireworks", "fireworks exploding", "firework,celebration"),
        ("balloon", "\U0001F388", "a balloon", "a balloon popping", "party balloon,pop"),
        ("wind_chime", "\U0001F390", "a wind chime", "a wind chime tinkling", "chimes"),
        ("light_bulb", "\U0001F4A1", "a light bulb", "a light switch clicking", "lamp,idea,bulb"),
        ("candle", "\U0001F56F", "a candle", "a candle flickering", "flame,candlelight"),
        ("coin", "\U0001FA99", "a coin", "coins clinking", "money,gold coin"),
        ("gift", "\U0001F381", "a gift", "wrapping paper rustling", "present,wrapped gift"),
        ("bathtub", "\U0001F6C1", "a bathtub", "a bath filling", "bath,bathing"),
        ("cooking_pan", "\U0001F373", "a frying pan", "food sizzling in a pan", "cooking,frying,egg"),
        ("teapot", "\U0001FAD6", "a teapot", "a kettle whistling", "kettle,tea"),
        ("popcorn", "\U0001F37F", "popcorn", "popcorn popping", "cinema snack"),
        ("soccer_ball", "\u26BD", "a soccer ball", "a ball being kicked", "football,ball"),
        ("basketball", "\U0001F3C0", "a basketball", "a basketball bouncing", "ball,hoop"),
        ("tennis", "\U0001F3BE", "a tennis ball", "a tennis ball being hit", "tennis racket,ball"),
        ("bowling", "\U0001F3B3", "bowling", "bowling pins falling", "bowling ball,pins,strike"),
        ("video_game", "\U0001F3AE", "a video game controller", "video game sounds", "game controller,gaming"),
        ("house", "\U0001F3E0", "a house", "", "home,building"),
        ("church", "\u26EA", "a church", "church bells ringing", "chapel,steeple"),
        ("factory", "\U0001F3ED", "a factory", "factory machinery", "industry,plant"),
        ("construction_crane", "\U0001F3D7", "a construction site", "construction noise", "building site,crane"),
        ("fountain", "\u26F2", "a fountain", "a fountain splashing", "water fountain"),
    ])
    + _c("people", [
        ("baby", "\U0001F476", "a baby", "a baby crying", "infant,newborn"),
        ("clapping", "\U0001F44F", "clapping hands", "people clapping", "applause,clap"),
        ("laughing", "\U0001F602", "a laughing face", "someone laughing", "laughter,joy,tears of joy"),
        ("crying", "\U0001F62D", "a crying face", "someone sobbing", "sobbing,tears,sad"),
        ("sneezing", "\U0001F927", "a sneezing face", "someone sneezing", "sneeze,cold,tissue"),
        ("yawning", "\U0001F971", "a yawning face", "someone yawning", "yawn,tired"),
        ("sleeping", "\U0001F634", "a sleeping face", "someone snoring", "snoring,sleep,zzz"),
        ("screaming", "\U0001F631", "a screaming face", "someone screaming", "scream,fear,shock"),
        ("kiss", "\U0001F618", "a face blowing a kiss", "a kiss", "kissing,love"),
        ("speaking", "\U0001F5E3", "a speaking head", "someone talking", "speech,voice,talking"),
        ("footprints", "\U0001F463", "footprints", "footsteps", "walking,steps"),
        ("running", "\U0001F3C3", "a person running", "running footsteps", "runner,jogging"),
        ("dancing", "\U0001F483", "a woman dancing", "dance music", "dancer,party"),
        ("waving", "\U0001F44B", "a waving hand", "someone saying hello", "hello,wave,goodbye"),
        ("ghost", "\U0001F47B", "a ghost", "a ghost moaning", "spooky,halloween,boo"),
        ("robot", "\U0001F916", "a robot", "robot noises", "machine,android,beeping"),
    ])
)
_BY_ID = {c.id: c for c in CONCEPTS}
GROUPS: tuple[str, ...] = tuple(dict.fromkeys(c.group for c in CONCEPTS))


def concept(concept_id: str) -> Concept:
    if concept_id not in _BY_ID:
        raise ConfigError(f"no picture concept {concept_id!r}; the vocabulary is seeingsounds.data.pictures.CONCEPTS")
    return _BY_ID[concept_id]


def captions_for(item: Concept | str) -> tuple[str, ...]:
    """Every phrasing of a concept, deterministic, without repeats, the noun phrase first.

    ``"a dog"``, ``"dog"``, ``"the sound of a dog"``, ``"a dog barking"``, ``"the sound of a dog
    barking"``, ``"dog face"`` (Unicode name), ``"a picture of a dog"``, then each keyword.
    """
    c = concept(item) if isinstance(item, str) else item
    phrases = [c.phrase, c.name, f"the sound of {c.phrase}"]
    if c.sound:
        phrases += [c.sound, f"the sound of {c.sound}"]
    phrases += [c.unicode_name, f"a picture of {c.phrase}", f"{c.name}, {', '.join(c.keywords)}" if c.keywords else ""]
    phrases += list(c.keywords)
    return tuple(dict.fromkeys(p.strip() for p in phrases if p.strip()))


@dataclass(frozen=True)
class Picture:
    """One captioned picture: ``image`` is RGB ``uint8`` ``[size, size, 3]`` on white."""

    concept: str
    style: str
    image: np.ndarray
    captions: tuple[str, ...]


def on_white(rgba: Image.Image, size: int, *, margin: float = 0.06) -> np.ndarray:
    """Crop an RGBA glyph to its visible pixels, centre it on a white square (aspect kept,
    ``margin`` of the side left free) and resize to ``size`` (area-averaging). Returns RGB uint8."""
    rgba = rgba.convert("RGBA")
    box = rgba.getchannel("A").getbbox()
    if box is None:
        raise ValueError("the picture is empty (fully transparent)")
    glyph = rgba.crop(box)
    side = int(round(max(glyph.size) / (1 - 2 * margin)))
    canvas = Image.new("RGBA", (side, side), WHITE + (255,))
    canvas.alpha_composite(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    return np.asarray(canvas.convert("RGB").resize((size, size), Image.Resampling.BOX), dtype=np.uint8)


# ---- style: noto (Debian fonts-noto-color-emoji) -------------------------------------------------
def noto_font_path() -> Path:
    if not NOTO_FONT.is_file():
        raise ConfigError(f"the noto picture style needs {NOTO_FONT}: install the Debian package "
                          f"{NOTO_PACKAGE} (`apt-get install {NOTO_PACKAGE}`; `make test` installs it)")
    return NOTO_FONT


@lru_cache(maxsize=1)
def _noto_font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(noto_font_path()), NOTO_FONT_SIZE)


def render_noto(emoji: str) -> Image.Image:
    """The Noto Color Emoji glyph of ``emoji`` as an RGBA image (transparent background)."""
    font = _noto_font()
    text = emoji.replace("\ufe0f", "")
    canvas = Image.new("RGBA", (NOTO_FONT_SIZE * 2, NOTO_FONT_SIZE * 2), (255, 255, 255, 0))
    ImageDraw.Draw(canvas).text((NOTO_FONT_SIZE // 4, NOTO_FONT_SIZE // 4), text, font=font, embedded_color=True)
    return canvas


def _noto_images(concepts: Sequence[Concept]) -> dict[str, Image.Image]:
    return {c.id: render_noto(c.emoji) for c in concepts}


# ---- npm packages (emoji-datasource, openmoji) ----------------------------------------------------
def npm_package_folder(package: str, version: str, marker: str, what: str, *, fetch: bool = True) -> Path:
    """The unpacked npm ``package@version`` in the SeeingSounds cache folder (``pictures/PACKAGE-VERSION``).

    Fetched once with ``npm pack`` (``fetch=False``: only look); ``marker`` is a file the package must
    hold. Raises :class:`ConfigError` naming ``what`` needs it and how to get it when it is absent and
    cannot be fetched.
    """
    spec = f"{package}@{version}"
    folder = home() / "pictures" / f"{package}-{version}"
    if (folder / marker).is_file():
        return folder
    how = (f"run `npm pack {spec}` and unpack its package/ folder to {folder}, or install Node.js/npm "
           "so SeeingSounds fetches it on first use")
    if not fetch:
        raise ConfigError(f"{what} needs npm's {spec}, not found at {folder}: {how}")
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigError(f"{what} needs npm's {spec} and `npm` is not installed: {how}")
    root = ensure_writable_dir(home() / "pictures", "SeeingSounds cache folder (set SEEINGSOUNDS_HOME to use another)")
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=root) as tmp:
        try:
            subprocess.run([npm, "pack", spec, "--silent"], cwd=tmp, check=True, capture_output=True, text=True,
                           timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            detail = (getattr(exc, "stderr", "") or str(exc)).strip().splitlines()[-1:] or [""]
            raise ConfigError(f"`npm pack {spec}` failed ({detail[0]}): {how}") from None
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if not tarballs:
            raise ConfigError(f"`npm pack {spec}` wrote no tarball: {how}")
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(tarballs[0]) as tar:
            tar.extractall(unpacked, filter="data")
        if not (unpacked / "package" / marker).is_file():
            raise ConfigError(f"{spec} has no {marker}: {how}")
        (unpacked / "package").rename(folder)  # one rename: a half-unpacked folder is never seen
    return folder


# ---- styles: emoji-datasource (npm) --------------------------------------------------------------
def emoji_datasource_folder(style: str, *, fetch: bool = True) -> Path:
    """The unpacked npm package of an emoji-datasource ``style`` in the SeeingSounds cache folder.

    Fetched once with ``npm pack NAME@16.0.0`` (``fetch=False``: only look). Raises
    :class:`ConfigError` saying how to get it when it is absent and cannot be fetched.
    """
    if style not in NPM_PACKAGES:
        raise ConfigError(f"no npm picture style {style!r}; npm styles: {sorted(NPM_PACKAGES)}")
    return npm_package_folder(NPM_PACKAGES[style], EMOJI_DATASOURCE_VERSION, "emoji.json",
                              f"the {style} picture style", fetch=fetch)


def _codepoints_key(text: str) -> str:
    return "-".join(f"{ord(ch):04X}" for ch in text if ch != "\ufe0f")


def hex_key(codepoints: str) -> str:
    """Hex codepoints as the packages write them (``2708-fe0f``) -> the key they are matched on (``2708``)."""
    return codepoints.upper().replace("-FE0F", "")


def _datasource_images(style: str, concepts: Sequence[Concept]) -> dict[str, Image.Image]:
    folder = emoji_datasource_folder(style)
    entries = json.loads((folder / "emoji.json").read_text(encoding="utf-8"))
    by_key = {}
    for entry in entries:
        for key in (entry.get("unified"), entry.get("non_qualified")):
            if key:
                by_key.setdefault(hex_key(key), entry)
    source = {"twemoji": "twitter", "google": "google"}[style]
    images = {}
    for c in concepts:
        entry = by_key.get(_codepoints_key(c.emoji))
        path = folder / "img" / source / "64" / entry["image"] if entry else None
        if path is not None and path.is_file():
            with Image.open(path) as im:
                images[c.id] = im.convert("RGBA")
    return images


# ---- style: openmoji (npm, SVG rasterised once) -------------------------------------------------
def openmoji_folder(*, fetch: bool = True) -> Path:
    """The unpacked npm ``openmoji@17.0.0`` in the SeeingSounds cache folder (fetched once with npm)."""
    return npm_package_folder(OPENMOJI_PACKAGE, OPENMOJI_VERSION, "data/openmoji.json", "the openmoji picture style",
                              fetch=fetch)


def _rasterise_svgs(svgs: Sequence[Path], out: Path, size: int) -> None:
    """Each SVG -> ``out/<stem>.png`` (RGBA, ``size`` px square), written to a temp folder renamed at the end."""
    try:
        import cairosvg  # deferred on purpose: only the first use of the openmoji style needs it
    except (ImportError, OSError) as exc:  # OSError: cairocffi without the system's libcairo2
        raise ConfigError(f"rasterising OpenMoji's SVGs into {out} needs cairosvg ({exc}): "
                          "`pip install 'seeingsounds[judge]'` (and `apt-get install libcairo2`)") from None
    failed = []
    with tempfile.TemporaryDirectory(prefix=".raster-", dir=out.parent) as tmp:
        for svg in svgs:
            try:
                cairosvg.svg2png(url=str(svg), write_to=str(Path(tmp) / f"{svg.stem}.png"), output_width=size,
                                 output_height=size)
            except Exception:  # noqa: BLE001 - cairosvg raises anything on an SVG it cannot draw; that emoji is left out
                failed.append(svg.name)
        if failed:
            logger.warning("%d of %d SVGs could not be rasterised and are left out: %s", len(failed), len(svgs),
                           ", ".join(failed[:5]))
        try:
            Path(tmp).rename(out)  # one rename: a half-rasterised folder is never seen
        except OSError:
            if not out.is_dir():
                raise
            return  # another process rasterised the same SVGs first; TemporaryDirectory removes ours
        Path(tmp).mkdir()  # for TemporaryDirectory's cleanup


def openmoji_pngs(*, fetch: bool = True) -> dict[str, Path]:
    """``{codepoints key: PNG}`` of every colour OpenMoji (keys as :func:`hex_key` writes them), the SVGs
    rasterised once at :data:`OPENMOJI_RASTER_SIZE` px into the package's cache folder."""
    folder = openmoji_folder(fetch=fetch)
    pngs = folder / f"color-png-{OPENMOJI_RASTER_SIZE}"
    if not pngs.is_dir():
        _rasterise_svgs(sorted((folder / "color" / "svg").glob("*.svg")), pngs, OPENMOJI_RASTER_SIZE)
    return {hex_key(path.stem): path for path in sorted(pngs.glob("*.png"))}


# ---- style: emojione (Debian ruby-gemojione) ----------------------------------------------------
def emojione_pngs() -> dict[str, Path]:
    """``{codepoints key: PNG}`` of every EmojiOne 2 picture of the installed Debian ``ruby-gemojione``."""
    if not EMOJIONE_PNG.is_dir():
        raise ConfigError(f"the emojione picture style needs {EMOJIONE_PNG}: install the Debian package "
                          f"{EMOJIONE_PACKAGE} (`apt-get install {EMOJIONE_PACKAGE}`)")
    return {hex_key(path.stem): path for path in sorted(EMOJIONE_PNG.glob("*.png"))}


#: styles stored as one PNG per emoji: style -> ``{codepoints key: PNG}`` (keys as :func:`hex_key` writes them)
PNG_STYLES: dict[str, Callable[[], dict[str, Path]]] = {"openmoji": openmoji_pngs, "emojione": emojione_pngs}


def _png_images(style: str, concepts: Sequence[Concept]) -> dict[str, Image.Image]:
    paths = PNG_STYLES[style]()
    images = {}
    for c in concepts:
        path = paths.get(_codepoints_key(c.emoji))
        if path is not None:
            with Image.open(path) as im:
                images[c.id] = im.convert("RGBA")
    return images


#: style name -> loader of ``{concept id: RGBA image}`` (concepts a style lacks are left out)
STYLES: dict[str, Callable[[Sequence[Concept]], dict[str, Image.Image]]] = {
    "noto": _noto_images,
    "twemoji": lambda concepts: _datasource_images("twemoji", concepts),
    "google": lambda concepts: _datasource_images("google", concepts),
    "openmoji": lambda concepts: _png_images("openmoji", concepts),
    "emojione": lambda concepts: _png_images("emojione", concepts),
}


def load_pictures(style: str = "noto", *, size: int = 32, concepts: Iterable[str] | None = None) -> list[Picture]:
    """One :class:`Picture` per concept (vocabulary order) in ``style`` at ``size`` px.

    ``concepts``: ids to load (default: all of :data:`CONCEPTS`). A concept the style lacks is
    left out; an unknown id or an unknown style is a :class:`ConfigError`.
    """
    if style not in STYLES:
        raise ConfigError(f"unknown picture style {style!r}; available: {sorted(STYLES)}")
    if int(size) < 4:
        raise ConfigError(f"picture size must be at least 4 px, got {size}")
    chosen = list(CONCEPTS) if concepts is None else [concept(i) for i in concepts]
    images = STYLES[style](chosen)
    out = []
    problems = []
    for c in chosen:
        if c.id not in images:
            continue
        try:
            array = on_white(images[c.id], int(size))
        except ValueError:
            problems.append(f"{style}: {c.id} ({c.emoji!r}) renders empty")
            continue
        out.append(Picture(c.id, style, array, captions_for(c)))
    if problems:
        raise DatasetError(problems, header=f"the {style} pictures have problems")
    return out
