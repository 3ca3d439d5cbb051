"""ImageNet-1k class names, their synonyms and a few parent words, and labels above a calibrated floor.

The names are WordNet lemmas kept in `data/imagenet_classes.tsv` (source in its header). Parent words
("car", "vehicle", "animal", "food", "furniture", "instrument", ...) are a small curated table so a query
for "car" reaches the taxi frame (class 468) as well as "taxi" and "cab" do.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASSES_FILE = Path(__file__).resolve().parent / "data" / "imagenet_classes.tsv"
NUM_CLASSES = 1000

# Probability at or above which a class (or a parent group's summed probability) becomes a label.
# Set by `bench/labels.py` on the hand-labelled `tune` split of bench/ground_truth/labels.json: the lowest
# floor whose labels (parent words included) are right at least 60% of the time there (0.62 at 0.12;
# held-out: 0.71). ImageNet has no "person", so frames of people get clothing labels; the floor keeps
# the noisiest out. See BENCHMARKS.md.
LABEL_FLOOR = 0.12
MAX_LABELS = 5


def _span(first: int, last: int) -> tuple[int, ...]:
    return tuple(range(first, last + 1))


_CAR = (407, 436, 468, 511, 609, 627, 656, 661, 717, 734, 751, 817, 864, 475, 479, 581)
_BUS = (654, 779, 874)
_TRUCK = (555, 569, 675, 717, 734, 864, 867)
_BICYCLE = (444, 671)
_MOTORCYCLE = (665, 670)
_TRAIN = (466, 547, 565, 705, 820, 829)
_BOAT = (403, 472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871, 914)
_AIRCRAFT = (404, 405, 895, 908)
_DOG = _span(151, 268)
_CAT = _span(281, 285)
_BIG_CAT = _span(286, 293)
_BIRD = _span(7, 24) + _span(80, 100) + _span(127, 146)
_FISH = _span(0, 6) + _span(389, 397)
_RABBIT = (330, 331, 332)
_FOOD = tuple(i for i in _span(924, 969) if i not in (958, 968))  # hay and cup are not food
_FRUIT = _span(948, 957)
_FURNITURE = (423, 453, 492, 495, 516, 520, 526, 532, 548, 553, 559, 564, 648, 703, 736, 765, 831, 857, 894)
_GUITAR = (402, 546)
_PIANO = (579, 881)
_INSTRUMENT: tuple[int, ...] = (
    401,
    402,
    420,
    432,
    486,
    494,
    513,
    541,
    546,
    558,
    566,
    577,
    579,
    593,
    594,
    641,
    642,
)
_INSTRUMENT += (683, 684, 687, 699, 776, 822, 875, 881, 889)
_BUILDING = (425, 483, 497, 498, 538, 580, 663, 668, 698, 832)

# Parent word -> the classes it covers. Words a user types; synonyms of a class come from its lemmas.
PARENTS: dict[str, tuple[int, ...]] = {
    "car": _CAR,
    "automobile": _CAR,
    "bus": _BUS,
    "truck": _TRUCK,
    "lorry": _TRUCK,
    "bicycle": _BICYCLE,
    "bike": _BICYCLE + _MOTORCYCLE,
    "motorcycle": _MOTORCYCLE,
    "train": _TRAIN,
    "boat": _BOAT,
    "ship": _BOAT,
    "aircraft": _AIRCRAFT,
    "airplane": _AIRCRAFT,
    "plane": _AIRCRAFT,
    "vehicle": _CAR + _BUS + _TRUCK + _BICYCLE + _MOTORCYCLE + _TRAIN + _BOAT + _AIRCRAFT,
    "dog": _DOG,
    "cat": _CAT + _BIG_CAT,
    "bird": _BIRD,
    "fish": _FISH,
    "rabbit": _RABBIT,
    "bunny": _RABBIT,
    "animal": _span(0, 397),
    "food": _FOOD,
    "fruit": _FRUIT,
    "furniture": _FURNITURE,
    "guitar": _GUITAR,
    "piano": _PIANO,
    "instrument": _INSTRUMENT,
    "building": _BUILDING,
    "tie": (451, 457, 906),
    "glasses": (836, 837),
}
_WORD_RE = re.compile(r"[a-z][a-z'-]*")


@dataclass(frozen=True)
class ImageNetClass:
    index: int
    synset: str
    lemmas: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.lemmas[0]


@functools.cache
def classes() -> tuple[ImageNetClass, ...]:
    """The 1000 classes in the classifier's output order."""
    out = []
    for line in CLASSES_FILE.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        index, synset, lemmas = line.split("\t")
        out.append(
            ImageNetClass(int(index), synset, tuple(x.strip() for x in lemmas.split(",") if x.strip()))
        )
    if len(out) != NUM_CLASSES or [c.index for c in out] != list(range(NUM_CLASSES)):
        raise ValueError(f"{CLASSES_FILE} must list classes 0..999 in order")
    return tuple(out)


@functools.cache
def _parents_of() -> dict[int, tuple[str, ...]]:
    out: dict[int, list[str]] = {}
    for word, members in PARENTS.items():
        for i in members:
            out.setdefault(i, []).append(word)
    return {i: tuple(words) for i, words in out.items()}


def terms_for_class(index: int) -> list[str]:
    """Every word a class is found by: its lemmas (synonyms) and its parent words."""
    return list(
        dict.fromkeys([*(lemma.lower() for lemma in classes()[index].lemmas), *_parents_of().get(index, ())])
    )


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@functools.cache
def _lemma_index() -> dict[str, tuple[int, ...]]:
    out: dict[str, list[int]] = {}
    for c in classes():
        for lemma in c.lemmas:
            out.setdefault(lemma.lower(), []).append(c.index)
    for word, members in PARENTS.items():
        out.setdefault(word, []).extend(members)
    return {k: tuple(dict.fromkeys(v)) for k, v in out.items()}


def classes_for_term(term: str) -> tuple[int, ...]:
    """The classes a query word or phrase names ("taxi", "cab", "car" -> ... 468 ...); () for none."""
    key = " ".join(_WORD_RE.findall(term.lower()))
    index = _lemma_index()
    return index.get(key) or index.get(_singular(key)) or ()


def label_terms(query: str) -> dict[str, tuple[int, ...]]:
    """The words and two-word phrases of a query that name ImageNet classes or parent words."""
    words = _WORD_RE.findall(query.lower())
    found: dict[str, tuple[int, ...]] = {}
    for n in (2, 1):
        for i in range(len(words) - n + 1):
            phrase = " ".join(words[i : i + n])
            hit = classes_for_term(phrase)
            if hit and not any(phrase in other for other in found):
                found[phrase] = hit
    return found


@dataclass(frozen=True)
class Label:
    """One label of a picture: a class name (or parent word), its probability and the classes behind it."""

    name: str
    confidence: float
    classes: tuple[int, ...]
    terms: tuple[str, ...]  # synonyms and parent words the search text carries


def labels_for(probabilities: np.ndarray, floor: float = LABEL_FLOOR, limit: int = MAX_LABELS) -> list[Label]:
    """Classes with probability >= floor, then parent groups whose summed probability reaches it (with one
    member at half the floor or more)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape != (NUM_CLASSES,):
        raise ValueError(f"expected {NUM_CLASSES} class probabilities, got shape {p.shape}")
    out: list[Label] = []
    for i in np.argsort(-p)[:limit]:
        if p[i] < floor:
            break
        c = classes()[int(i)]
        out.append(Label(c.name, round(float(p[i]), 4), (c.index,), tuple(terms_for_class(c.index))))
    named = {label.name for label in out}
    for word, members in PARENTS.items():
        member_p = p[list(members)]
        total = float(member_p.sum())
        # A parent needs one member at half the floor: "animal" summed from 398 classes at 0.001 each is
        # noise spread thin, not an animal.
        if member_p.max() < floor / 2:
            continue
        if total >= floor and word not in named and word not in ("automobile", "lorry", "bunny", "plane"):
            out.append(Label(word, round(min(total, 1.0), 4), tuple(members), (word,)))
    out.sort(key=lambda label: (-label.confidence, label.name))
    return out


def search_words(labels: Iterable[Label]) -> list[str]:
    """The words labels add to a segment's search text: names, synonyms and parents, once each."""
    return list(dict.fromkeys(term for label in labels for term in (label.name.lower(), *label.terms)))
