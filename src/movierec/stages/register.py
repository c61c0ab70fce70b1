"""Stage ``register``: the pipeline run as an MLflow run, the bundle as a model version, promote-if-better.

Runs after ``bundle``. The run holds every setting, the epoch curves, the evaluation, the
plots, the lineage (data fingerprint, git commit, DVC lock digest) and the bundle; the
bundle becomes a new version of the registered model (``registry.model_name``) with alias
``challenger``, and becomes ``champion`` when the promote-if-better rule says so (see
:mod:`movierec.tracking.promotion`). ``reports/registry.json`` records the outcome.
"""

from __future__ import annotations

from typing import Any

from movierec.models.bundle import check_manifest
from movierec.paths import ProjectPaths
from movierec.recording import Recorder
from movierec.redact import redact
from movierec.settings import Settings
from movierec.tracking import promotion, registry, store
from movierec.tracking.mlflow_backend import metric_key
from movierec.tracking.run_log import bundle_source, lineage, log_pipeline_run


def _store_label(paths: ProjectPaths) -> str:
    if store.is_embedded(paths):
        return "embedded (mlflow/ in the project)"
    return redact(store.tracking_uri(paths))


def metric_tags(manifest: dict[str, Any]) -> dict[str, str]:
    """The bundle's headline metrics as version tags: each system's test NDCG@10 and
    Recall@100, each quality bar's value, the index recalls against brute force."""
    metrics = manifest.get("metrics", {})
    tags = {}
    for system, values in metrics.get("test", {}).items():
        for name in ("ndcg@10", "recall@100"):
            if name in values:
                tags[metric_key(f"test.{system}.{name}")] = f"{values[name]:.6f}"
    for name, bar in metrics.get("bars", {}).items():
        tags[metric_key(f"bar.{name}")] = (
            f"{bar.get('value', float('nan')):.4f} ({'met' if bar.get('met') else 'unmet'})"
        )
    return tags


def run(settings: Settings, paths: ProjectPaths) -> dict[str, Any]:
    """Log, register and decide; returns ``reports/registry.json``'s content."""
    manifest = check_manifest(paths.checkpoints)  # nothing is registered from a bundle that fails its check
    with store.speaking_errors(paths):
        return _register(settings, paths, manifest)


def _register(settings: Settings, paths: ProjectPaths, manifest: dict[str, Any]) -> dict[str, Any]:
    section = settings.registry
    model = section.model_name
    client = store.client(paths)
    existing = registry.find_bundle(client, model, manifest["version"])
    if existing is not None:  # a rerun (a retried task, `movierec register` again): nothing new to record
        found = client.get_model_version(model, existing)
        reason = (
            f"bundle {manifest['version']} is already version {existing}: nothing new recorded (its decision: "
            f"{found.tags.get('promotion_decision', '-')}: {found.tags.get('promotion_reason', '-')})"
        )
        champion = registry.champion(client, model)
        promoted = champion is not None and champion.version == existing
        return _record(client, paths, section.experiment, model, existing, found.run_id, promoted, reason, manifest)
    experiment = store.experiment_id(client, paths, section.experiment)
    tags = lineage(settings, paths, manifest)  # once: the run and the version carry the same lineage
    run_id = log_pipeline_run(client, experiment, settings, paths, tags)
    facts = promotion.candidate("new", manifest)
    source = bundle_source(client, run_id)
    version = registry.register_bundle(client, model, run_id, source, facts, {**tags, **metric_tags(manifest)})
    facts = registry.facts_of(client, model, version)
    if section.promote:
        decision = promotion.decide(facts, registry.champions(client, model), section.tolerance)
    else:
        decision = promotion.Decision(False, "promotion is off (registry.promote: false)")
    registry.record_decision(client, model, version, decision)
    return _record(
        client, paths, section.experiment, model, version, run_id, decision.promote, decision.reason, manifest
    )


def _record(
    client: Any,
    paths: ProjectPaths,
    experiment: str,
    model: str,
    version: str,
    run_id: str,
    promoted: bool,
    reason: str,
    manifest: dict[str, Any],
) -> dict[str, Any]:
    """Write and return ``reports/registry.json`` for ``version`` of ``model``."""
    champion = registry.champion(client, model)
    report = {
        "store": _store_label(paths),
        "experiment": experiment,
        "run_id": run_id,
        "model": model,
        "version": int(version),
        "promoted": promoted,
        "reason": reason,
        "champion": int(champion.version) if champion else None,
        "bundle_version": manifest["version"],
        "chain_ndcg@10": round(registry.facts_of(client, model, version).chain_ndcg, 6),
    }
    Recorder(paths.reports, paths.plots).metrics("registry", report)
    return report
