"""`tsdtp reproduce`: pipeline.yaml's spec, the plan of steps, papermill execution with staging, the manifest
and the gallery of `reports/`.
"""
