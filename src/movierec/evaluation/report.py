"""``movierec evaluate``: score every system's test lists on one protocol and report them.

Reads each ``*.parquet`` list file under the given recommendation folders (one file
per system: ``user_id``, ``item_ids``), and each ``ratings_*.parquet`` prediction file,
and writes one metrics JSON (declared as DVC metrics), a per-K curve table (DVC plots)
and a PNG of the curves. A table of the headline numbers is printed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

from movierec.data.matrix import InteractionMatrix, Vocab
from movierec.data.parts import read_parts
from movierec.errors import DataError
from movierec.evaluation.bootstrap import mean_interval, paired_ratio
from movierec.evaluation.protocol import EvalSet, build_eval_set
from movierec.recording import Recorder

CURVE_KS = (1, 2, 5, 10, 20, 50, 100)
SEED_FILE = re.compile(r"(.+)\.seed(\d+)")
BOOTSTRAP_SEED = 0
BASELINES_MARKER = "validation.json"  # the baselines stage's tuning record marks its folder's systems as baselines
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


def evaluate(
    split_dir: Path,
    features_dir: Path,
    recs_dirs: list[Path],
    recorder: Recorder,
    params: dict[str, Any],
    report_name: str = "metrics",
) -> dict[str, Any]:
    """Score every system found under ``recs_dirs`` on the test period.

    Args:
        split_dir: the split step's output.
        features_dir: the features step's output (item genres for diversity).
        recs_dirs: folders of list files (``<system>.parquet``) and rating files.
        recorder: where the metrics (``<report_name>.json``) and the per-K curves
            (``metrics_at_k.csv`` and ``.png``) go; the bars read its ``index.json``.
        params: the ``evaluate`` section: ``ks``, ``min_rating``.

    Returns:
        The metrics recorded as ``<report_name>``.
    """
    from movierec.evaluation import per_user_ranking_metrics, ranking_metrics, rating_metrics, summarise

    ks = [int(k) for k in params["ks"]]
    k_max = max(ks)
    # every per-user metric gets an interval; paired comparisons are made on NDCG and recall
    interval_metrics = [
        f"{m}@{k}" for m in ("ndcg", "recall", "hitrate", "map", "precision") for k in sorted(set(ks))
    ] + ["mrr"]
    known = InteractionMatrix.from_table(read_parts(split_dir, "train", "valid"))
    test = read_parts(split_dir, "test")
    evalset = build_eval_set(known, test, params.get("min_rating"))
    popularity = known.item_counts() / max(len(known.users), 1)
    genres = genre_matrix(Path(features_dir) / "test" / "items.parquet", known.items)
    result: dict[str, Any] = {
        "protocol": {
            "history": "train+valid",
            "target": "test",
            "users": int(evalset.user_ids.size),
            "cold_users": int(evalset.cold_user.sum()),
            "catalogue": known.n_items,
            "ks": ks,
        },
        "systems": {},
        "ratings": {},
    }
    curves: list[dict[str, Any]] = []
    slices = {"all": np.ones(evalset.user_ids.size, bool), "warm": ~evalset.cold_user, "cold": evalset.cold_user}
    per_user: dict[str, dict[str, np.ndarray]] = {}
    baselines: list[str] = []
    for recs_dir in recs_dirs:
        for name, files in system_files(Path(recs_dir)).items():
            if name in result["systems"]:
                raise DataError(f"system '{name}' appears in two recommendation folders", path=recs_dir)
            runs = [load_recommendations(path, evalset, k_max) for path in files]
            system: dict[str, Any] = {}
            for label, mask in slices.items():
                if mask.any():
                    per_run = [
                        summarise(recs[mask], evalset.relevant[mask], ks, known.n_items, popularity, genres)
                        for recs in runs
                    ]
                    system[label] = {m: float(np.mean([r[m] for r in per_run])) for m in per_run[0]}
                    if label == "all" and len(runs) > 1:
                        system["seeds"] = {
                            "runs": len(runs),
                            **{
                                m: {
                                    "mean": float(np.mean([r[m] for r in per_run])),
                                    "std": float(np.std([r[m] for r in per_run], ddof=1)),
                                    "min": float(np.min([r[m] for r in per_run])),
                                    "max": float(np.max([r[m] for r in per_run])),
                                }
                                for m in per_run[0]
                            },
                        }
            run_values = [per_user_ranking_metrics(r, evalset.relevant, ks) for r in runs]
            per_user[name] = {m: np.mean([v[m] for v in run_values], axis=0) for m in interval_metrics}
            system["interval"] = {m: mean_interval(v, seed=BOOTSTRAP_SEED) for m, v in per_user[name].items()}
            result["systems"][name] = system
            if (Path(recs_dir) / BASELINES_MARKER).exists():
                baselines.append(name)
            at_k = [ranking_metrics(r, evalset.relevant, [k for k in CURVE_KS if k <= k_max]) for r in runs]
            curves += [
                {
                    "system": name,
                    "k": k,
                    "recall": float(np.mean([a[f"recall@{k}"] for a in at_k])),
                    "ndcg": float(np.mean([a[f"ndcg@{k}"] for a in at_k])),
                }
                for k in CURVE_KS
                if k <= k_max
            ]
        for path in sorted(Path(recs_dir).glob("ratings_*.parquet")):
            result["ratings"][path.stem.removeprefix("ratings_")] = _rating_metrics(path, test, rating_metrics)
    if not result["systems"]:
        raise DataError("no recommendation files found", path=", ".join(map(str, recs_dirs)))
    result["baselines"] = baselines
    result["comparisons"] = paired_comparisons(per_user, baselines)
    result["bars"] = quality_bars(result, recorder.reports / "index.json")
    recorder.metrics(report_name, _rounded(result))
    _write_curves(curves, recorder)
    return result


def system_files(recs_dir: Path) -> dict[str, list[Path]]:
    """The list files of each system in a folder: ``<system>.parquet`` or one file per
    training seed, ``<system>.seed<N>.parquet`` (rating files ``ratings_*`` excluded)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(Path(recs_dir).glob("*.parquet")):
        if path.name.startswith("ratings_"):
            continue
        match = SEED_FILE.fullmatch(path.stem)
        found.setdefault(match.group(1) if match else path.stem, []).append(path)
    return found


def paired_comparisons(per_user: dict[str, dict[str, np.ndarray]], baselines: list[str]) -> dict[str, Any]:
    """Every system against EASE and against the best baseline, by a paired bootstrap.

    The best baseline is chosen per metric by its mean on this test set. Returns
    ``{"ease": {system: {metric: ratio...}}, "best_baseline": {system: {metric: {...,
    "baseline": name}}}}``.
    """
    out: dict[str, Any] = {"reference": {}, "ease": {}, "best_baseline": {}}
    if not baselines:
        return out
    metrics = [m for m in next(iter(per_user.values())) if m.startswith(("ndcg@", "recall@"))]
    best = {m: max(baselines, key=lambda b: per_user[b][m].mean()) for m in metrics}
    out["reference"] = {f"best_baseline_{m}": b for m, b in best.items()}
    for name, values in per_user.items():
        if "ease" in per_user and name != "ease":
            out["ease"][name] = {m: paired_ratio(values[m], per_user["ease"][m], seed=BOOTSTRAP_SEED) for m in metrics}
        if name not in baselines:
            out["best_baseline"][name] = {
                m: {**paired_ratio(values[m], per_user[best[m]][m], seed=BOOTSTRAP_SEED), "baseline": best[m]}
                for m in metrics
            }
    return out


def quality_bars(result: dict[str, Any], index_report: Path) -> dict[str, Any]:
    """The product's quality bars, each with its value, target, interval and whether it is met.

    A bar comparing two systems is met only when it holds for the mean (over seeds) and
    the lower end of the paired bootstrap interval of the ratio is above 1:

    * the served chain's NDCG@10 at least 1.10 times plain EASE's;
    * the chain's NDCG@10 above the best baseline's (recency-weighted EASE included);
    * retrieval Recall@100 at least the best baseline's;
    * ScaNN and FAISS Recall@100 against brute force at least 0.95.
    """
    bars: dict[str, Any] = {}
    comparisons = result.get("comparisons", {})
    recall = f"recall@{max(result['protocol']['ks'])}"
    ndcg = f"ndcg@{min(result['protocol']['ks'])}"

    def paired_bar(ratio: dict[str, Any] | None, target: float, against: str) -> dict[str, Any] | None:
        if not ratio:
            return None
        return {
            "value": ratio["ratio"],
            "target": target,
            "low": ratio["low"],
            "high": ratio["high"],
            "against": against,
            "met": bool(ratio["ratio"] >= target and ratio["low"] > 1.0),
        }

    chain_vs_ease = comparisons.get("ease", {}).get("chain", {}).get(ndcg)
    chain_vs_best = comparisons.get("best_baseline", {}).get("chain", {}).get(ndcg)
    retrieval_vs_best = comparisons.get("best_baseline", {}).get("retrieval", {}).get(recall)
    for key, bar in (
        (f"chain_{ndcg}_over_ease", paired_bar(chain_vs_ease, 1.10, "ease")),
        (
            f"chain_{ndcg}_over_best_baseline",
            paired_bar(chain_vs_best, 1.0, chain_vs_best["baseline"] if chain_vs_best else ""),
        ),
        (
            f"retrieval_{recall}_over_best_baseline",
            paired_bar(retrieval_vs_best, 1.0, retrieval_vs_best["baseline"] if retrieval_vs_best else ""),
        ),
    ):
        if bar is not None:
            bars[key] = bar
    if index_report.exists():
        from movierec.io import read_json

        report = read_json(index_report)
        for kind, value in (report.get("recall") or {}).items():
            bars[f"{kind}_recall@{report.get('k', 100)}_vs_brute"] = {
                "value": value,
                "target": 0.95,
                "met": value >= 0.95,
            }
    return bars


def _rating_metrics(path: Path, test: pa.Table, rating_metrics: Any) -> dict[str, float]:
    table = pq.read_table(path)
    joined = test.select(["user_id", "item_id", "rating"]).join(table, ["user_id", "item_id"], join_type="inner")
    if joined.num_rows != test.num_rows:
        raise DataError(f"predictions cover {joined.num_rows} of {test.num_rows} test ratings", path=path)
    return rating_metrics(
        joined.column("rating").to_numpy(), pc.cast(joined.column("prediction"), pa.float64()).to_numpy()
    )


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, float):
        return None if value != value else round(value, 6)  # NaN (undefined metric) -> null
    return value


def _write_curves(rows: list[dict[str, Any]], recorder: Recorder) -> None:
    """Record the per-K curves as CSV (for ``dvc plots``) and as a PNG."""
    recorder.table(
        "metrics_at_k",
        ({**row, "recall": f"{row['recall']:.6f}", "ndcg": f"{row['ndcg']:.6f}"} for row in rows),
        ["system", "k", "recall", "ndcg"],
    )
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
    recorder.figure("metrics_at_k.png", lambda handle: fig.savefig(handle, format="png", dpi=110))
    plt.close(fig)


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of the headline metrics with their 95% intervals over users, each
    system's NDCG ratio to EASE (paired interval), the rating errors and the bars."""
    ks = result["protocol"]["ks"]
    ndcg, recall_lo, recall_hi = f"ndcg@{min(ks)}", f"recall@{min(ks)}", f"recall@{max(ks)}"
    vs_ease = result.get("comparisons", {}).get("ease", {})

    def cell(system: dict[str, Any], metric: str) -> str:
        value = system["all"].get(metric)
        if value is None:
            return "-"
        interval = system.get("interval", {}).get(metric)
        text = f"{value:.4f}"
        if interval:
            text += f" [{interval['low']:.4f}, {interval['high']:.4f}]"
        spread = system.get("seeds", {}).get(metric)
        return text + (f" ±{spread['std']:.4f}" if spread else "")

    header = [
        "system",
        f"{ndcg} [95% CI]",
        recall_lo,
        f"{recall_hi} [95% CI]",
        f"{ndcg} / ease [95% CI]",
        "coverage@100",
        "seeds",
    ]
    rows = []
    for name, system in sorted(result["systems"].items(), key=lambda kv: -kv[1]["all"].get(ndcg, 0)):
        ratio = vs_ease.get(name, {}).get(ndcg)
        rows.append(
            [
                name,
                cell(system, ndcg),
                f"{system['all'].get(recall_lo, float('nan')):.4f}",
                cell(system, recall_hi),
                f"{ratio['ratio']:.3f} [{ratio['low']:.3f}, {ratio['high']:.3f}]" if ratio else "-",
                f"{system['all'].get('coverage@100', float('nan')):.4f}",
                str(system.get("seeds", {}).get("runs", 1)),
            ]
        )
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    p = result["protocol"]
    lines.append(
        f"({p['users']} test users, {p['cold_users']} cold; catalogue {p['catalogue']} items; "
        f"history = {p['history']}; ± is the spread (std) over training seeds)"
    )
    for name, m in result.get("ratings", {}).items():
        lines.append(f"rating prediction {name}: RMSE {m['rmse']:.4f}  MAE {m['mae']:.4f}")
    for name, bar in result.get("bars", {}).items():
        interval = f" [{bar['low']:.4f}, {bar['high']:.4f}] vs {bar['against']}" if "low" in bar else ""
        lines.append(
            f"bar {name}: {bar['value']:.4f}{interval} (target {bar['target']:.4f}) "
            f"{'met' if bar['met'] else 'NOT met'}"
        )
    return "\n".join(lines)
