"""What the Airflow DAG's tasks do, kept out of the DAG file so that parsing it stays cheap.

``dags/ml_pipeline_dag.py`` holds only the task graph, the trigger form and the schedule; each
of its tasks calls :func:`movierec.orchestration.tasks.run_task`, which runs the stage layer's
functions (the same ones ``dvc repro`` runs through the CLI) and then records them in
``dvc.lock`` so that ``dvc status`` stays clean and ``dvc repro`` and the DAG never fight.
"""
