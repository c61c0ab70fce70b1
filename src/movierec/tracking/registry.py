"""The model registry: each bundle a version of one registered model, with aliases.

Every registered version gets alias ``challenger``; the promote-if-better rule
(:mod:`movierec.tracking.promotion`) or a person (``movierec models promote``) moves
``champion`` to it. The order in which versions became champion is kept as the registered
model's tag ``champion_history``, so ``rollback`` moves ``champion`` back to the one before.
Every decision and its reason are tags on the version.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from movierec.errors import MovierecError
from movierec.tracking.mlflow_backend import metric_key
from movierec.tracking.promotion import METRIC, Candidate, Decision

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"


class RegistryError(MovierecError):
    """A registry operation that cannot be done (unknown version, nothing to roll back to)."""


NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")  # MLflow's codes for "no such model/alias"


def _not_found(exc: Exception) -> bool:
    """True when MLflow said the thing does not exist (not when it could not be reached)."""
    return getattr(exc, "error_code", None) in NOT_FOUND


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _alias(client: MlflowClient, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise


def _history(client: MlflowClient, name: str) -> list[str]:
    tags = client.get_registered_model(name).tags
    return [v for v in tags.get(HISTORY_TAG, "").split(",") if v]


def _version(client: MlflowClient, name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if not _not_found(exc):
            raise
        known = ", ".join(sorted((str(v.version) for v in _versions(client, name)), key=int)) or "none"
        raise RegistryError(f"model {name!r} has no version {version} (versions: {known})") from None


def _versions(client: MlflowClient, name: str) -> list[Any]:
    return list(client.search_model_versions(f"name = '{name}'"))


def register_bundle(
    client: MlflowClient, name: str, run_id: str, source: str, facts: Candidate, tags: dict[str, str]
) -> str:
    """Register ``source`` (the run's bundle artifacts) as a new version of ``name`` with alias
    ``challenger``; its metrics and lineage become tags. Returns the version number."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if not _not_found(exc):
            raise
        client.create_registered_model(
            name, description="movierec bundles: two-tower retrieval, indexes and ranker, served as one folder"
        )
    version_tags = {
        **tags,
        metric_key(f"chain_{METRIC}"): f"{facts.chain_ndcg:.6f}",
        "unmet_bars": ",".join(facts.unmet_bars),
        "evaluation_key": facts.evaluation_key,
        "registered_at": _stamp(),
    }
    version = client.create_model_version(name, source, run_id=run_id, tags=version_tags)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return str(version.version)


def facts_of(client: MlflowClient, name: str, version: str) -> Candidate:
    """A registered version's facts for the promotion rule, read back from its tags."""
    tags = _version(client, name, version).tags
    return Candidate(
        version=str(version),
        chain_ndcg=float(tags.get(metric_key(f"chain_{METRIC}"), "nan")),
        unmet_bars=tuple(b for b in tags.get("unmet_bars", "").split(",") if b),
        evaluation_key=tags.get("evaluation_key", ""),
    )


def champion(client: MlflowClient, name: str) -> Candidate | None:
    """The current champion's facts, or None when there is none yet."""
    version = _alias(client, name, CHAMPION)
    return facts_of(client, name, version) if version is not None else None


def champions(client: MlflowClient, name: str) -> list[Candidate]:
    """The facts of every version that has been champion (the history and the current one)."""
    from mlflow.exceptions import MlflowException

    try:
        seen = _history(client, name)
    except MlflowException as exc:
        if _not_found(exc):
            return []
        raise
    current = _alias(client, name, CHAMPION)
    out = []
    for version in dict.fromkeys([*seen, *([current] if current else [])]):
        try:
            out.append(facts_of(client, name, version))
        except RegistryError:  # a version deleted since: nothing to compare with
            continue
    return out


def find_bundle(client: MlflowClient, name: str, bundle_version: str) -> str | None:
    """The registered version holding bundle ``bundle_version`` (the same bytes), if any."""
    from mlflow.exceptions import MlflowException

    try:
        versions = _versions(client, name)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise
    found = [v for v in versions if v.tags.get("bundle_version") == bundle_version]
    return str(min(int(v.version) for v in found)) if found else None


def record_decision(client: MlflowClient, name: str, version: str, decision: Decision) -> None:
    """Tag the version with the decision; promote it when the decision says so."""
    if decision.promote:
        promote(client, name, version, decision.reason, decided="promoted")
        return
    client.set_model_version_tag(name, version, "promotion_decision", "kept as challenger")
    client.set_model_version_tag(name, version, "promotion_reason", decision.reason)


def promote(client: MlflowClient, name: str, version: str, reason: str, decided: str = "promoted by hand") -> None:
    """Make ``version`` the champion (and drop its challenger alias); the previous champion
    stays in the history for a rollback."""
    version = str(_version(client, name, version).version)
    client.set_registered_model_alias(name, CHAMPION, version)  # first: the history never runs ahead of it
    history = _history(client, name)
    if not history or history[-1] != version:
        history.append(version)
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history))
    if _alias(client, name, CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    for key, value in (("promotion_decision", decided), ("promotion_reason", reason), ("promoted_at", _stamp())):
        client.set_model_version_tag(name, version, key, value)


def rollback(client: MlflowClient, name: str) -> tuple[str, str]:
    """Move ``champion`` back to the previous champion; returns (from, to).

    Raises:
        RegistryError: there is no champion, or none before it.
    """
    current = _alias(client, name, CHAMPION)
    if current is None:
        raise RegistryError(f"model {name!r} has no champion to roll back")
    history = _history(client, name)
    while history and history[-1] == current:
        history.pop()
    if not history:
        raise RegistryError(f"model {name!r}: champion v{current} has no previous champion to roll back to")
    target = history[-1]
    _version(client, name, target)  # still there (else the error names the versions there are)
    client.set_registered_model_alias(name, CHAMPION, target)
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history))
    client.set_model_version_tag(name, current, "rolled_back_at", _stamp())
    client.set_model_version_tag(name, current, "promotion_decision", "rolled back")
    client.set_model_version_tag(name, current, "promotion_reason", f"champion moved back to v{target}")
    client.set_model_version_tag(name, target, "promotion_decision", "champion again (rollback)")
    client.set_model_version_tag(name, target, "promotion_reason", f"rollback from v{current}")
    return current, target


def list_versions(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """Every version, newest first: aliases, chain NDCG@10, bars, the decision and its reason."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if _not_found(exc):
            return []
        raise
    aliases: dict[str, list[str]] = {}
    for alias, number in model.aliases.items():
        aliases.setdefault(str(number), []).append(alias)
    rows = []
    for version in sorted(_versions(client, name), key=lambda v: int(v.version), reverse=True):
        tags = version.tags
        rows.append(
            {
                "version": str(version.version),
                "aliases": sorted(aliases.get(str(version.version), [])),
                f"chain_{METRIC}": tags.get(metric_key(f"chain_{METRIC}"), ""),
                "bars": "met" if not tags.get("unmet_bars") else "unmet: " + tags["unmet_bars"],
                "decision": tags.get("promotion_decision", ""),
                "reason": tags.get("promotion_reason", ""),
                "bundle": tags.get("bundle_version", ""),
                "dataset": tags.get("dataset", ""),
                "run_id": version.run_id,
                "registered_at": tags.get("registered_at", ""),
            }
        )
    return rows
