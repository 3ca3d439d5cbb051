"""A reader process keeps answering while the writer publishes new snapshots and collects old ones."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import kuzu

from dataflux_pipelines.graph.schema import DDL
from dataflux_pipelines.graph.store import publish_snapshot

READER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from dataflux_pipelines.graph.store import GraphReader, relationships
    graph_dir, final = Path(sys.argv[1]), int(sys.argv[2])
    reader = GraphReader(graph_dir)
    seen, errors, queries = set(), [], 0
    print("ready" if reader.query("MATCH (a:Asset) RETURN count(a) AS n")[0]["n"] > 0 else "empty", flush=True)
    for _ in range(200000):  # bounded: ends when the final version has been read
        try:
            with reader.connection() as conn:
                n = conn.execute("MATCH (a:Asset) RETURN count(a)").get_next()[0]
                version = conn.snapshot.version
            rel = relationships(reader, "a0", depth=2)
            seen.add((version, n, rel["snapshot_version"], len(rel["nodes"])))
            queries += 1
        except Exception as exc:
            errors.append(repr(exc))
        if version == final:
            break
    print(json.dumps({"errors": errors[:5], "n_errors": len(errors), "queries": queries, "seen": sorted(seen)}))
    """
)


def _version(n_assets: int):
    def mutate(conn: kuzu.Connection) -> None:
        for ddl in DDL:
            conn.execute(ddl)
        conn.execute("UNWIND range(0, $n - 1) AS i CREATE (:Asset {id: 'a' + string(i)})", {"n": n_assets})
        conn.execute("CREATE (:Concept {id: 'dark'})")
        conn.execute(
            "MATCH (a:Asset), (c:Concept) WHERE c.id = 'dark' CREATE (a)-[:TAGGED {confidence: 0.5}]->(c)"
        )

    return mutate


def test_a_reader_process_keeps_answering_while_snapshots_are_published_and_collected(tmp_path: Path) -> None:
    graph_dir = tmp_path / "graph"
    publish_snapshot(graph_dir, _version(10))
    final = 8
    proc = subprocess.Popen(
        [sys.executable, "-c", READER, str(graph_dir), str(final)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        for version in range(2, final + 1):
            # keep=1, no grace: every older snapshot is deleted at once, even the one being read.
            publish_snapshot(graph_dir, _version(10 * version), keep=1, grace_s=0.0)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["n_errors"] == 0, report["errors"]
    seen = report["seen"]
    assert seen[-1][0] == final and seen[-1][1] == 10 * final
    # Every answer is internally consistent: the count matches its snapshot's version.
    # a0 → dark → every asset: 10·v assets plus the concept.
    assert all(n == 10 * v and nodes == 10 * rv + 1 for v, n, rv, nodes in seen), seen
    assert len({v for v, *_ in seen}) >= 2  # the reader really switched snapshots while running
    assert len(list((graph_dir / "snapshots").glob("*.kuzu"))) == 1
