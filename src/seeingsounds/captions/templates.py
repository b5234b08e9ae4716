"""Offline, deterministic caption engine: f and g by fixed English templates.

A caption is read as ``[article] phrase[punctuation]``: the leading article or determiner (``a``/``an``/
``the``, a number word such as ``two``, ``some``, ``my``, ``this``... or none) is split off, a capital
first letter is lowered (all-capital words such as ``TV`` stay) and trailing punctuation is set aside. The edit is applied to the phrase, and the result gets the
caption's style back: capital first letter if the input had one, its trailing punctuation.

Edits for the transformation descriptions of the effects module (X = the phrase with its article):

==================  ==========================================
``low-volume``      ``a distant X``           (adjective after the article; a/an re-chosen;
                                              ``two distant dogs``)
``medium-volume``   ``X in the middle distance``
``high-volume``     ``a loud X, close up``
``reverberant``     ``X, echoing in a large hall``
``echoing``         ``X, echoing in a tunnel``
``muffled``         ``X, muffled, heard through a wall``
``higher-pitched``  ``a high-pitched X``
``lower-pitched``   ``a low-pitched X``
``faster``          ``a fast X``
``slower``          ``a slow X``
==================  ==========================================

Descriptions match case-insensitively with ``_`` or spaces for ``-`` (``"Low volume"``). An edit
whose words are already in the caption leaves it unchanged (no "a distant distant train"). Any
other description ``d`` gives ``"X, d"`` — never an error.

Fusion g: ``"X and Y"`` (``"a train passing by and a helicopter hovering"``); two identical captions
with an indefinite article give ``"a dog barking and another dog barking"``, without one the caption
itself.

Class captions from labels (:meth:`TemplateEditor.class_caption`): underscores become spaces,
camelCase is split, case is lowered (all-capital words stay), AudioSet-style alternatives
``"Male speech, man speaking"`` are tried in order and the first that fits a pattern wins:

1. ``subject verb-ing`` (``"dog barking"``) -> ``"a dog barking"``; a plural subject (ending in
   ``s``, or ``people``, ``children``...) takes no article (``"lions roaring"``); ``an`` before a
   vowel (``"an owl hooting"``).
2. ``subject verb`` with a known sound verb (``"dog_bark"``, ``"clock tick"``) -> the verb gets
   ``-ing``, then rule 1: ``"a dog barking"``.
3. anything else -> ``"the sound of <label>"``, with ``a``/``an`` before a singular countable head noun
   (``"the sound of a helicopter"``, ``"the sound of an engine"``) and none before a plural, a mass noun
   or a gerund phrase (``"the sound of rail transport"``, ``"the sound of sea waves"``,
   ``"the sound of playing acoustic guitar"``).

Articles written in a caption are kept as written (``"an MRI machine"``); ``a``/``an`` is chosen only
for a new first word, by spelling (``an owl``, ``a unicorn``, ``an hour``) and for all-capital
abbreviations by their spoken letter (``an MRI``, ``a TV``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from seeingsounds.audio.effects import all_descriptions
from seeingsounds.captions.edit import CaptionEditor
from seeingsounds.captions.store import normalise_text
from seeingsounds.errors import ConfigError

__all__ = ["TemplateEditor", "STANDARD_DESCRIPTIONS", "normalise_description", "standard_descriptions"]

def standard_descriptions() -> tuple[str, ...]:
    """Every description d_j the registered audio effects can produce (the effect registry's display order).

    A description without a template of its own (an effect registered later) edits to ``"X, d"``.
    """
    return all_descriptions()


#: the built-in effects' descriptions d_j (:func:`standard_descriptions` also lists effects registered later)
STANDARD_DESCRIPTIONS: tuple[str, ...] = standard_descriptions()

_ARTICLES = ("a", "an", "the")
#: other words that stand where an article would (an adjective goes after them: "two distant dogs")
_DETERMINERS = frozenset(
    "two three four five six seven eight nine ten twelve some several many another each every "
    "my your his her its our their this that these those".split()
)
_TRAILING = ".!?;:,…"

#: bare verbs that a ``subject verb`` label (``dog_bark``) turns into ``subject verb-ing``
_SOUND_VERBS = frozenset(
    """bark barks bay bleat bellow buzz caw chatter cheep chime chirp chirrup cluck coo creak croak crow cry
    drip growl grunt hiss honk hoot howl hum knock meow miaow moo neigh oink purr quack ring roar rumble rustle
    scream screech sing snarl snore snort splash squawk squeak squeal tick trumpet tweet twitter wail whimper
    whine whinny whistle yap yelp yowl beep clap cough laugh sneeze sniff speak talk shout yell whisper
    breathe crackle pop bang crash drum rattle slam tap click thud flap flush blow pour""".split()
)

#: plural nouns without a final "s" (no article before them)
_PLURALS = frozenset("people children men women geese mice cattle police teeth feet sheep fish".split())

_VOWEL_SOUND_EXCEPTIONS = ("uni", "use", "usu", "uti", "ure", "eu", "one", "once", "ewe")
_SILENT_H = ("hour", "honest", "honor", "honour", "heir")
#: capital letters whose spoken name starts with a vowel sound ("an MRI", "an FM radio", "an X-ray")
_VOWEL_LETTERS = "AEFHILMNORSX"


def _indefinite(word: str) -> str:
    """``a`` or ``an`` before ``word`` (spelling rule with the common exceptions, abbreviations by letter)."""
    first = re.split(r"[\s-]", word.strip(), maxsplit=1)[0]
    if len(first) > 1 and first.isupper():
        return "an" if first[0] in _VOWEL_LETTERS else "a"
    w = word.lower()
    if w.startswith(_SILENT_H):
        return "an"
    if w.startswith(_VOWEL_SOUND_EXCEPTIONS):
        return "a"
    return "an" if w[:1] in "aeiou" else "a"


def normalise_description(description: str) -> str:
    """Canonical form of a description: lower case, ``-`` between words (``"Low volume"`` -> ``low-volume``)."""
    return re.sub(r"[\s_-]+", "-", description.strip().lower())


@dataclass
class _Caption:
    """A caption split into the parts the templates touch."""

    article: str  # "a", "an", "the" or ""
    phrase: str  # the rest, without trailing punctuation
    capital: bool  # the input started with a capital letter
    punctuation: str  # trailing punctuation of the input

    @classmethod
    def parse(cls, caption: str) -> _Caption:
        if not isinstance(caption, str):
            raise ConfigError(f"a caption must be a string, got {type(caption).__name__}")
        text = normalise_text(caption)
        core = text.rstrip(_TRAILING + " ")
        if not core:
            raise ConfigError(f"caption {caption!r} is empty: give a short description of the sound")
        punctuation = text[len(core) :].replace(" ", "")
        words = core.split(" ")
        first = words[0]
        acronym = len(first) > 1 and first[:2].isupper()  # "TV", "NASA": keep as written
        capital = first[0].isupper() and not acronym
        if capital:
            words[0] = first[0].lower() + first[1:]
        if len(words) > 1 and (words[0].lower() in _ARTICLES or words[0].lower() in _DETERMINERS):
            return cls(words[0].lower(), " ".join(words[1:]), capital, punctuation)
        return cls("", " ".join(words), capital, punctuation)

    def noun(self) -> str:
        """The phrase with its article, as written (``an MRI machine`` stays so)."""
        return f"{self.article} {self.phrase}" if self.article else self.phrase

    def with_adjective(self, adjective: str) -> str:
        """``a <adjective> phrase`` (a/an re-chosen), ``the <adjective> phrase`` or ``<adjective> phrase``."""
        phrase = f"{adjective} {self.phrase}"
        if self.article in ("a", "an"):
            return f"{_indefinite(phrase)} {phrase}"
        return f"{self.article} {phrase}" if self.article else phrase

    def render(self, text: str) -> str:
        """``text`` in the input's style (capital first letter, trailing punctuation)."""
        if self.capital:
            text = text[0].upper() + text[1:]
        return text + self.punctuation


def _adjective(word: str) -> Callable[[_Caption], str]:
    return lambda c: c.with_adjective(word)


def _suffix(text: str) -> Callable[[_Caption], str]:
    return lambda c: f"{c.noun()}{text}"


#: description -> (template, words whose presence means the edit is already there)
_TEMPLATES: dict[str, tuple[Callable[[_Caption], str], str]] = {
    "low-volume": (_adjective("distant"), "distant"),
    "medium-volume": (_suffix(" in the middle distance"), "in the middle distance"),
    "high-volume": (lambda c: f"{c.with_adjective('loud')}, close up", "close up"),
    "reverberant": (_suffix(", echoing in a large hall"), "echoing in a large hall"),
    "echoing": (_suffix(", echoing in a tunnel"), "echoing in a tunnel"),
    "muffled": (_suffix(", muffled, heard through a wall"), "heard through a wall"),
    "higher-pitched": (_adjective("high-pitched"), "high-pitched"),
    "lower-pitched": (_adjective("low-pitched"), "low-pitched"),
    "faster": (_adjective("fast"), "fast"),
    "slower": (_adjective("slow"), "slow"),
}
assert set(_TEMPLATES) <= set(STANDARD_DESCRIPTIONS), "a template for a description no effect produces"


def _contains_words(text: str, words: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(words)}(?![\w-])", text.lower()) is not None


def _ing(verb: str) -> str:
    """``bark`` -> ``barking``, ``sneeze`` -> ``sneezing``, ``clap`` -> ``clapping``, ``cry`` -> ``crying``."""
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")):
        return verb[:-1] + "ing"
    if (
        len(verb) >= 3
        and verb[-1] not in "aeiouwxy"
        and verb[-2] in "aeiou"
        and verb[-3] not in "aeiou"
        and len(verb) <= 4
    ):
        return verb + verb[-1] + "ing"
    return verb + "ing"


def _label_words(label: str) -> str:
    text = label.replace("_", " ")
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)  # camelCase
    text = normalise_text(text).strip(_TRAILING + " ")
    words = [w if (len(w) > 1 and w.isupper()) else w.lower() for w in text.split(" ") if w]
    return " ".join(words)


def _subject_caption(subject: str, action: str) -> str:
    last = subject.split(" ")[-1]
    plural = last in _PLURALS or (last.endswith("s") and not last.endswith(("ss", "us", "is")))
    article = "" if plural or subject.startswith(("the ", "a ", "an ")) else _indefinite(subject) + " "
    return f"{article}{subject} {action}"


#: nouns read without an article after "the sound of" (uncountable)
_MASS_NOUNS = frozenset(
    """rain wind water thunder fire traffic music speech applause laughter snow hail sleet drizzle rainfall static
    noise transport machinery gunfire steam smoke air surf chatter babble silence wildlife electricity glass paper
    plastic metal wood gravel sand mud ice foliage grass jazz techno reggae funk disco gospel soul livestock
    poultry cattle furniture cutlery crockery equipment construction weather lightning outside inside hubbub""".split()
)
#: words after which the head noun of a label has ended ("footsteps on snow": head "footsteps")
_HEAD_END = frozenset("of on in at with by from under over through into onto near inside outside for and or".split())
#: nouns ending in -ing that are not gerunds
_ING_NOUNS = frozenset("building ceiling string spring swing wing ring king sling duckling earring".split())


def _sound_of(text: str) -> str:
    """``the sound of <text>`` with ``a``/``an`` before a singular countable head noun."""
    words = text.split(" ")
    first = words[0].lower()
    head_words = []
    for w in words:
        if w.lower() in _HEAD_END and head_words:
            break
        head_words.append(w)
    head = head_words[-1].lower()
    plural = head in _PLURALS or (head.endswith("s") and not head.endswith(("ss", "us", "is")))
    gerund = (first.endswith("ing") and len(first) > 4) or (
        head.endswith("ing") and len(head) > 4 and head not in _ING_NOUNS
    )
    if first in _ARTICLES or first in _DETERMINERS or plural or gerund or head in _MASS_NOUNS:
        return f"the sound of {text}"
    return f"the sound of {_indefinite(text)} {text}"


def _try_patterns(text: str) -> str | None:
    words = text.split(" ")
    if len(words) < 2:
        return None
    *subject, last = words
    if subject[0].endswith("ing"):  # "playing guitar", "crackling fire": not subject + verb
        return None
    if last.endswith("ing") and len(last) > 4:
        return _subject_caption(" ".join(subject), last)
    if len(words) == 2 and last in _SOUND_VERBS:
        verb = last[:-1] if last.endswith("s") and last[:-1] in _SOUND_VERBS else last
        return _subject_caption(subject[0], _ing(verb))
    return None


class TemplateEditor(CaptionEditor):
    """Deterministic offline engine (the default). See the module docstring for every rule."""

    name = "template"

    def edit(self, caption: str, description: str) -> str:
        """f(t_y, d_j) by template; unknown descriptions give ``"X, <description>"``."""
        if not isinstance(description, str) or not description.strip():
            raise ConfigError(f"transformation description {description!r} is empty: name the effect")
        parsed = _Caption.parse(caption)
        key = normalise_description(description)
        full = parsed.noun()
        if key in _TEMPLATES:
            template, marker = _TEMPLATES[key]
            if _contains_words(full, marker):
                return parsed.render(full)
            return parsed.render(template(parsed))
        text = normalise_text(description).strip(_TRAILING + " ")
        if _contains_words(full, text.lower()):
            return parsed.render(full)
        return parsed.render(f"{full}, {text}")

    def fuse(self, caption_u: str, caption_v: str) -> str:
        """g(t_u, t_v) = ``"X and Y"`` in the style (capital, punctuation) of the first caption."""
        u, v = _Caption.parse(caption_u), _Caption.parse(caption_v)
        if u.noun() == v.noun():
            if u.article in ("a", "an"):
                return u.render(f"{u.noun()} and another {u.phrase}")
            return u.render(u.noun())
        return u.render(f"{u.noun()} and {v.noun()}")

    def class_caption(self, label: str) -> str:
        """t_y from a bare label by the rules in the module docstring."""
        if not isinstance(label, str) or not _label_words(label):
            raise ConfigError(f"class label {label!r} is empty: give every class a name")
        parts = [_label_words(p) for p in label.split(",")]
        parts = [p for p in parts if p]
        for part in parts:
            caption = _try_patterns(part)
            if caption:
                return caption
        return _sound_of(parts[0])
