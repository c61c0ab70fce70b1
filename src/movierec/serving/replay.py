"""``movierec replay``: evaluate served lists, and optionally a new bundle, on logged traffic.

For every logged retrieval or recommendation request of a known user, the items that
user gave feedback on *after* the request are the ground truth. The report gives the
hit rate and recall of the lists the service actually returned, and, with ``--bundle``,
of the lists a (new) bundle returns for the same users, using only the feedback given
before each request: an offline A/B comparison on real traffic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from movierec.errors import DataError
from movierec.serving.storage import is_database_url
from movierec.serving.store import EventStore, read_request_logs

ENDPOINTS = ("retrieval", "recommendations")


def replay(
    database: Path | str,
    bundle: Path | None = None,
    k: int = 10,
) -> dict[str, Any]:
    """Score logged lists (and optionally a bundle) against the feedback that followed.

    Args:
        database: the service's SQLite file, or its PostgreSQL URL (request log and feedback).
        bundle: a bundle folder to re-score the same requests with, or None.
        k: list length to evaluate.

    Returns:
        Counts, and hit rate and recall at ``k`` of the served and the replayed lists.
    """
    if not is_database_url(database) and not Path(database).exists():
        raise DataError("no service database; serve some traffic first", path=database)
    logs = [r for r in read_request_logs(database) if r["endpoint"] in ENDPOINTS and r["user_id"] is not None]
    store = EventStore(database)
    events = store.all_events()
    store.close()
    by_user: dict[int, list[tuple[int, int]]] = {}
    for user, item, _rating, _event, stamp in events:
        by_user.setdefault(int(user), []).append((int(stamp), int(item)))
    evaluated = []
    for row in logs:
        later = {item for stamp, item in by_user.get(int(row["user_id"]), []) if stamp >= row["time"]}
        if later:
            evaluated.append((row, later))
    report: dict[str, Any] = {
        "logged_requests": len(logs),
        "feedback_events": len(events),
        "requests_with_later_feedback": len(evaluated),
        "k": k,
    }
    if not evaluated:
        return report
    report.update(_score([row["item_ids"][:k] for row, _ in evaluated], [t for _, t in evaluated], "served"))
    if bundle is not None:
        from movierec.serving.service import Recommender, UserQuery

        rec = Recommender(Path(bundle))
        lists = []
        for row, _ in evaluated:
            earlier = [item for stamp, item in by_user.get(int(row["user_id"]), []) if stamp < row["time"]]
            result = rec.retrieve(UserQuery(user_id=int(row["user_id"])), earlier, k, True, None, None, None, "brute")
            ranked, _ = rec.rank(UserQuery(user_id=int(row["user_id"])), earlier, result.item_ids)
            lists.append(ranked.item_ids[:k])
        report.update(_score(lists, [t for _, t in evaluated], "replayed"))
        report["replayed_bundle"] = rec.version
    return report


def _score(lists: list[list[int]], truths: list[set[int]], prefix: str) -> dict[str, float]:
    hits = [len(set(items) & truth) for items, truth in zip(lists, truths)]
    return {
        f"{prefix}_hit_rate": round(sum(h > 0 for h in hits) / len(hits), 6),
        f"{prefix}_recall": round(sum(h / len(t) for h, t in zip(hits, truths)) / len(hits), 6),
    }
