"""Damaged run folders, named to sort before the good ones, for the dashboard's bad-run tests."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOOD = "planted-12"


def make_bad_runs(root: Path) -> dict[str, str]:
    """Write one good run and damaged ones under ``root``; returns {folder: what is wrong with it}."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "sample_data" / GOOD, root / GOOD)
    bad: dict[str, str] = {}

    def clone(name: str, why: str) -> Path:
        shutil.copytree(ROOT / "sample_data" / GOOD, root / name)
        bad[name] = why
        return root / name

    deep = clone("a1-deep-manifest", "manifest nested 100,000 deep")
    (deep / "manifest.json").write_text('{"format": "taskaffinity.run", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    seed = clone("a2-seed-overflow", 'affinity.json with "seed": 1e999')
    text = (seed / "affinity.json").read_text()
    data = json.loads(text)
    data["seed"] = 0
    (seed / "affinity.json").write_text(json.dumps(data).replace('"seed": 0', '"seed": 1e999'))
    for name, key, value, why in [("a3-tasks-int", "tasks", 5, '"tasks": 5'),
                                  ("a4-cost-text", "cost", "a lot", '"cost": "a lot"'),
                                  ("a5-progress-list", "progress", [1, 2], '"progress": [1, 2]'),
                                  ("a6-seconds-text", "cost", {"trainings": "many", "seconds": "x"},
                                   '"cost": {"trainings": "many"}')]:
        run = clone(name, why)
        man = json.loads((run / "manifest.json").read_text())
        man[key] = value
        (run / "manifest.json").write_text(json.dumps(man))
    garbage = clone("a7-binary-garbage", "manifest of binary garbage")
    (garbage / "manifest.json").write_bytes(bytes(range(256)) * 40)
    loop = clone("a8-symlink-loop", "manifest.json and affinity.json are symlink loops")
    for f in ("manifest.json", "affinity.json"):
        (loop / f).unlink()
        (loop / f).symlink_to(loop / f)
    return bad
