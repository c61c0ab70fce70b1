"""``movierec evaluate``: score every system's test lists on one protocol and report them.

Reads each ``*.parquet`` list file under the given recommendation folders (one file
per system: ``user_id``, ``item_ids``), and each ``ratings_*.parquet`` prediction file,
and writes one metrics JSON (declared as DVC metrics), a per-K curve table (DVC plots)
and a PNG of the curves. A table of the headline numbers is printed.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

from movierec.baselines.run import read_parts
from movierec.data.matrix import InteractionMatrix, Vocab
from movierec.errors import DataError
from movierec.evaluation.protocol import EvalSet, build_eval_set
from movierec.io import atomic_file, write_json

CURVE_KS = (1, 2, 5, 10, 20, 50, 100)
HEADLINE = ("recall@10", "ndcg@10", "map@10", "recall@100", "ndcg@100", "mrr", "coverage@100", "novelty@10")


def load_recommendations(path: Path, evalset: EvalSet, k_max: int) -> np.ndarray:
    """Read a list file and align it with ``evalset``'s users as item indices.

    Raises:
        DataError: the file lacks a scored user, or names items outside the known catalogue.
    """
    table = pq.read_table(path)
    for column in ("user_id", "item_ids"):
        if column not in table.column_names:
            raise DataError(f"missing column '{column}' (expected user_id, item_ids)", path=path)
    users = Vocab.from_values(table.column("user_id").to_numpy())
    if len(users) != table.num_rows:
        raise DataError("a user appears on more than one row", path=path)
    row_of = users.index(evalset.user_ids)
    if (row_of < 0).any():
        missing = evalset.user_ids[row_of < 0]
        raise DataError(f"no list for {missing.size} evaluated users (first: {missing[0]})", path=path)
    lists = table.column("item_ids").combine_chunks()
    order = np.argsort(table.column("user_id").to_numpy(), kind="stable")
    out = np.full((evalset.user_ids.size, k_max), -1, dtype=np.int64)
    offsets = lists.offsets.to_numpy()
    values = evalset.items.index(lists.values.to_numpy())
    if (values < 0).any():
        bad = lists.values.to_numpy()[values < 0][0]
        raise DataError(f"recommends item {bad}, which is not in the known catalogue", path=path)
    for out_row, user_row in enumerate(order[row_of]):
        seq = values[offsets[user_row] : offsets[user_row + 1]][:k_max]
        out[out_row, : seq.size] = seq
    return out


def genre_matrix(items_path: Path, items: Vocab) -> sp.csr_matrix:
    """Binary ``(n_items, n_genres)`` matrix from the feature step's items table."""
    table = pq.read_table(items_path, columns=["item_id", "genres"])
    idx = items.index(table.column("item_id").to_numpy())
    genres = table.column("genres").to_pylist()
    names = sorted({g for gs in genres if gs for g in gs})
    col_of = {g: j for j, g in enumerate(names)}
    rows, cols = [], []
    for i, gs in zip(idx, genres):
        if i >= 0 and gs:
            for g in gs:
                rows.append(i)
                cols.append(col_of[g])
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(items), max(len(names), 1)))


def evaluate(split_dir: Path, features_dir: Path, recs_dirs: list[Path], metrics_path: Path,
             plots_dir: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Score every system found under ``recs_dirs`` on the test period.

    Args:
        split_dir: the split step's output.
        features_dir: the features step's output (item genres for diversity).
        recs_dirs: folders of list files (``<system>.parquet``) and rating files.
        metrics_path: the metrics JSON to write.
        plots_dir: where ``metrics_at_k.csv`` and ``metrics_at_k.png`` go.
        params: the ``evaluate`` section: ``ks``, ``min_rating``.

    Returns:
        The metrics written to ``metrics_path``.
    """
    from movierec.evaluation import ranking_metrics, rating_metrics, summarise

    ks = [int(k) for k in params["ks"]]
    k_max = max(ks)
    known = InteractionMatrix.from_table(read_parts(split_dir, "train", "valid"))
    test = read_parts(split_dir, "test")
    evalset = build_eval_set(known, test, params.get("min_rating"))
    popularity = known.item_counts() / max(len(known.users), 1)
    genres = genre_matrix(Path(features_dir) / "test" / "items.parquet", known.items)
    result: dict[str, Any] = {
        "protocol": {
            "history": "train+valid", "target": "test", "users": int(evalset.user_ids.size),
            "cold_users": int(evalset.cold_user.sum()), "catalogue": known.n_items, "ks": ks,
        },
        "systems": {}, "ratings": {},
    }
    curves: list[dict[str, Any]] = []
    slices = {"all": np.ones(evalset.user_ids.size, bool), "warm": ~evalset.cold_user, "cold": evalset.cold_user}
    for recs_dir in recs_dirs:
        for path in sorted(Path(recs_dir).glob("*.parquet")):
            if path.name.startswith("ratings_"):
                continue
            recs = load_recommendations(path, evalset, k_max)
            system: dict[str, Any] = {}
            for label, mask in slices.items():
                if mask.any():
                    system[label] = summarise(recs[mask], evalset.relevant[mask], ks, known.n_items, popularity, genres)
            result["systems"][path.stem] = system
            at_k = ranking_metrics(recs, evalset.relevant, [k for k in CURVE_KS if k <= k_max])
            curves += [{"system": path.stem, "k": k, "recall": at_k[f"recall@{k}"], "ndcg": at_k[f"ndcg@{k}"]}
                       for k in CURVE_KS if k <= k_max]
        for path in sorted(Path(recs_dir).glob("ratings_*.parquet")):
            result["ratings"][path.stem.removeprefix("ratings_")] = _rating_metrics(path, test, rating_metrics)
    if not result["systems"]:
        raise DataError("no recommendation files found", path=", ".join(map(str, recs_dirs)))
    result["bars"] = quality_bars(result, Path(metrics_path).parent / "index.json")
    write_json(metrics_path, _rounded(result))
    _write_curves(curves, Path(plots_dir))
    return result


def quality_bars(result: dict[str, Any], index_report: Path) -> dict[str, Any]:
    """The product's quality bars, each with its value, target and whether it is met.

    * retrieval Recall@100 at least EASE's;
    * the served chain's NDCG@10 at least 1.10 times EASE's;
    * ScaNN and FAISS Recall@100 against brute force at least 0.95.
    """
    systems = result["systems"]
    bars: dict[str, Any] = {}
    ease = systems.get("ease", {}).get("all")
    recall = f"recall@{max(result['protocol']['ks'])}"
    ndcg = f"ndcg@{min(result['protocol']['ks'])}"
    if ease and "retrieval" in systems:
        value = systems["retrieval"]["all"][recall]
        bars[f"retrieval_{recall}_vs_ease"] = {"value": value, "target": ease[recall], "met": value >= ease[recall]}
    if ease and "chain" in systems:
        ratio = systems["chain"]["all"][ndcg] / max(ease[ndcg], 1e-12)
        bars[f"chain_{ndcg}_over_ease"] = {"value": ratio, "target": 1.10, "met": ratio >= 1.10}
    if index_report.exists():
        from movierec.io import read_json

        report = read_json(index_report)
        for kind, value in (report.get("recall") or {}).items():
            bars[f"{kind}_recall@{report.get('k', 100)}_vs_brute"] = {"value": value, "target": 0.95,
                                                                     "met": value >= 0.95}
    return bars


def _rating_metrics(path: Path, test: pa.Table, rating_metrics: Any) -> dict[str, float]:
    table = pq.read_table(path)
    joined = test.select(["user_id", "item_id", "rating"]).join(table, ["user_id", "item_id"], join_type="inner")
    if joined.num_rows != test.num_rows:
        raise DataError(f"predictions cover {joined.num_rows} of {test.num_rows} test ratings", path=path)
    return rating_metrics(joined.column("rating").to_numpy(), pc.cast(joined.column("prediction"), pa.float64()).to_numpy())


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, float):
        return None if value != value else round(value, 6)  # NaN (undefined metric) -> null
    return value


def _write_curves(rows: list[dict[str, Any]], plots_dir: Path) -> None:
    """Write the per-K curves as CSV (for ``dvc plots``) and as a PNG."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    with atomic_file(plots_dir / "metrics_at_k.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["system", "k", "recall", "ndcg"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "recall": f"{row['recall']:.6f}", "ndcg": f"{row['ndcg']:.6f}"})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for system in dict.fromkeys(r["system"] for r in rows):
        ks = [r["k"] for r in rows if r["system"] == system]
        for ax, metric in zip(axes, ("recall", "ndcg")):
            ax.plot(ks, [r[metric] for r in rows if r["system"] == system], marker="o", label=system)
    for ax, metric in zip(axes, ("Recall@K", "NDCG@K")):
        ax.set_xscale("log")
        ax.set_xlabel("K")
        ax.set_title(f"{metric} on the test period (full catalogue)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    with atomic_file(plots_dir / "metrics_at_k.png", "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of the headline metrics, one row per system, plus rating errors."""
    columns = [c for c in HEADLINE if any(c in s.get("all", {}) for s in result["systems"].values())]
    header = ["system"] + columns + ["cold ndcg@10"]
    rows = []
    for name, system in sorted(result["systems"].items(), key=lambda kv: -kv[1]["all"].get("ndcg@10", 0)):
        cold = system.get("cold", {}).get("ndcg@10")
        rows.append([name] + [f"{system['all'][c]:.4f}" for c in columns] + ["-" if cold is None else f"{cold:.4f}"])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    p = result["protocol"]
    lines.append(f"({p['users']} test users, {p['cold_users']} cold; catalogue {p['catalogue']} items; "
                 f"history = {p['history']})")
    for name, m in result.get("ratings", {}).items():
        lines.append(f"rating prediction {name}: RMSE {m['rmse']:.4f}  MAE {m['mae']:.4f}")
    for name, bar in result.get("bars", {}).items():
        lines.append(f"bar {name}: {bar['value']:.4f} (target {bar['target']:.4f}) {'met' if bar['met'] else 'NOT met'}")
    return "\n".join(lines)
