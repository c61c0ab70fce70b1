"""Tracking and lifecycle: MLflow runs and the model registry, Pushgateway training metrics.

=================  ======================================================================
module             what it holds
=================  ======================================================================
store              where the MLflow store is (embedded ``mlflow/`` or ``MLFLOW_TRACKING_URI``)
mlflow_backend     a :class:`movierec.recording.Recorder` backend that writes into one run
run_log            one pipeline run as an MLflow run: params, epochs, evaluation, lineage
promotion          the promote-if-better rule (pure logic, no MLflow)
registry           model versions, aliases ``challenger`` / ``champion``, promote, rollback
pushgateway        the training metrics pushed to a Prometheus Pushgateway
=================  ======================================================================

The service never imports this package: it fetches registered bundles with
:mod:`movierec.serving.model_source`.
"""
