"""Every hostile file of the corpus, uploaded over REST under its (hostile) name and processed, ends
where it must: refused at the door or failed with its reason code, or completed as decoded; never a
5xx, never stuck, never half-written, and no name ever becomes a path."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from api_support import api_client
from audit import audit
from hostile import hostile_corpus
from tally import TALLY

from dataflux_pipelines.orchestration.definitions import defs
from dataflux_pipelines.orchestration.embedded import process_landing
from dataflux_pipelines.settings import Settings

pytestmark = pytest.mark.reliability


def test_the_hostile_corpus_is_refused_failed_or_completed_with_reasons(
    dataflux_env: Settings, tmp_path: Path
) -> None:
    settings = dataflux_env
    corpus = hostile_corpus(tmp_path / "corpus")
    assert len(corpus) >= 40 and len({h.cls for h in corpus}) >= 15
    landed: dict[str, object] = {}
    problems: list[str] = []
    with api_client(settings) as client:
        for item in corpus:
            TALLY.add("inputs_tried")
            response = client.post(
                "/api/v1/assets", files={"file": (item.name, item.data, "application/octet-stream")}
            )
            if response.status_code >= 500:
                TALLY.add("server_errors_5xx")
                problems.append(f"{item.cls}/{item.name[:40]!r}: upload answered {response.status_code}")
            elif response.status_code == 201:
                landed[response.json()["id"]] = item
                if item.expect == "refused":
                    problems.append(f"{item.cls}/{item.name!r}: must be refused, was landed")
            elif response.status_code == 409:
                problems.append(f"{item.cls}/{item.name[:40]!r}: duplicate bytes in the corpus")
            else:
                code = response.json()["error"]["code"]
                TALLY.add("refused_with_reason")
                if item.expect != "refused" or code in ("bad_request", "internal_error", None):
                    problems.append(
                        f"{item.cls}/{item.name[:40]!r}: refused ({code}) but must be {item.expect}"
                    )

    with dg.DagsterInstance.get() as instance:
        process_landing(settings, instance, defs)

    result = audit(settings)
    outcomes: Counter[str] = Counter()
    for asset_id, item in landed.items():
        row = result.assets.get(asset_id)
        if row is None:
            TALLY.add("files_lost")
            problems.append(f"{item.cls}/{item.name[:40]!r}: landed, then no catalog row")  # type: ignore[attr-defined]
            continue
        outcomes[f"{row['status']}:{row['reason_code']}"] += 1
        if row["status"] == "failed" and row["reason_code"]:
            TALLY.add("refused_with_reason")
        if not item.allows(row["status"], row["reason_code"]):  # type: ignore[attr-defined]
            problems.append(
                f"{item.cls}/{item.name[:40]!r}: ended {row['status']} ({row['reason_code']}: "  # type: ignore[attr-defined]
                f"{(row['reason_message'] or '')[:120]}), must be {item.expect} {sorted(item.reasons)}"  # type: ignore[attr-defined]
            )
        name = row["filename"] or ""
        if "/" in name or "\\" in name or "\x00" in name or len(name) > 200:
            problems.append(f"stored name {name[:60]!r} could be read as a path")
    TALLY.add("stuck_files", len(result.stuck))
    TALLY.add("duplicates", len(result.duplicates))
    TALLY.add("files_lost", len(result.half_written))
    # No name escaped the object store: nothing was written beside the home folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "dagster_home", "home"]
    assert not [p for p in (tmp_path / "home").rglob("passwd*")]
    assert not problems, "\n".join(problems) + f"\noutcomes: {dict(outcomes)}"
    assert result.clean, result
    assert os.path.isdir(settings.home)
