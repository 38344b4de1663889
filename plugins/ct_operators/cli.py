"""``python -m ct_operators <command>``: set-up, drift simulation, prediction, demo and `make up`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from ct_operators.config import PROJECT_ROOT, ConfigError, load_settings

SEED_CSV = PROJECT_ROOT / "include" / "data" / "point_samples.csv"


def init_store(seed: Path | None = SEED_CSV) -> dict:
    """Create the schema (idempotent) and load the seed data once."""
    from ct_operators.events import emit
    from ct_operators.store.factory import store_from_environment

    settings = load_settings()
    store = store_from_environment(settings)
    store.init_schema()
    inserted = store.load_seed_csv(seed) if seed else 0
    if inserted:
        emit("seed_loaded", settings.audit_log, rows=inserted, source=str(seed), store=repr(store))
    return {"store": repr(store), "seed_rows_inserted": inserted, "samples": store.count_samples()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ct_operators", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser("init-store", help="create the feature-store schema and load the seed data once")
    p_init.add_argument("--seed-csv", type=Path, default=SEED_CSV)
    p_init.add_argument("--no-seed", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "init-store":
            result = init_store(None if args.no_seed else args.seed_csv)
        print(json.dumps(result, indent=2, default=str))
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
