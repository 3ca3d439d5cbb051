"""How the word-agreement constants of dataflux_api/query/relevance.py were chosen: precision@3 of the
topic queries (tests/topic_corpus.py) over a grid, on the `tune` queries only; `held_out` is printed for
the chosen point and for the old behaviour (agreement 1: words count whatever the meaning).

Library: the 320 topic documents (seed 17, as in bench/peers/pixeltable.py) written as segment rows with
MiniLM vectors and the full-text index in real Lance (tests/query_corpus.py), searched by SearchEngine.

    PYTHONPATH=. .venv/bin/python bench/peers/topic_fusion.py
"""

from __future__ import annotations

import itertools
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import topic_corpus  # noqa: E402
from query_corpus import Doc, Seg, build_home, settings_for  # noqa: E402

from dataflux_api.query import SearchEngine, SearchRequest  # noqa: E402
from dataflux_api.query import relevance as rel  # noqa: E402
from dataflux_pipelines.models.registry import ModelRegistry  # noqa: E402

GRID = {"zero": (0.05, 0.1, 0.15, 0.2), "full": (0.35, 0.45, 0.55), "low": (0.0, 0.15, 0.3, 0.5)}


def evaluate(engine: SearchEngine, topic_of: dict[str, str], split: str) -> float:
    scores = []
    for t in topic_corpus.queries(split):
        engine.cache.clear()
        results = engine.search(SearchRequest(query=t.query, limit=3)).results
        scores.append(topic_corpus.precision_at([topic_of.get(r.id) for r in results], t.name))
    return statistics.fmean(scores)


def set_constants(zero: float, full: float, low: float) -> None:
    rel.WORD_COSINE_ZERO, rel.WORD_COSINE_FULL, rel.WORD_AGREEMENT_MIN = zero, full, low


def main() -> None:
    shipped = (rel.WORD_COSINE_ZERO, rel.WORD_COSINE_FULL, rel.WORD_AGREEMENT_MIN)
    with tempfile.TemporaryDirectory() as tmp:
        registry = ModelRegistry(settings_for(Path(tmp) / "registry"))
        corpus = topic_corpus.documents(seed=17)
        kind = {"md": "text/markdown", "pdf": "application/pdf"}
        docs = [
            Doc(d.filename, "document", kind[d.filename[-3:].strip(".")], [Seg(d.text, page=1)])
            for d in corpus
        ]
        settings = build_home(Path(tmp) / "home", registry, docs)
        topic_of = {doc.id: d.topic for doc, d in zip(docs, corpus, strict=True)}
        engine = SearchEngine(settings, registry)
        set_constants(0.0, 1.0, 1.0)  # agreement 1 everywhere: the behaviour before word agreement
        before = evaluate(engine, topic_of, "tune"), evaluate(engine, topic_of, "held_out")
        rows = []
        for zero, full, low in itertools.product(GRID["zero"], GRID["full"], GRID["low"]):
            set_constants(zero, full, low)
            rows.append((evaluate(engine, topic_of, "tune"), zero, full, low))
        best = max(rows, key=lambda r: (round(r[0], 6), r[3]))  # ties: the gentlest (highest floor)
        set_constants(*shipped)
        shipped_scores = evaluate(engine, topic_of, "tune"), evaluate(engine, topic_of, "held_out")
    for tune, zero, full, low in sorted(rows, reverse=True)[:12]:
        print(f"tune {tune:.3f}  zero {zero}  full {full}  min {low}")
    print(f"best on tune: zero {best[1]} full {best[2]} min {best[3]} -> tune {best[0]:.3f}")
    print(f"before word agreement: tune {before[0]:.3f}, held-out {before[1]:.3f}")
    print(f"shipped {shipped}: tune {shipped_scores[0]:.3f}, held-out {shipped_scores[1]:.3f}")


if __name__ == "__main__":
    main()
