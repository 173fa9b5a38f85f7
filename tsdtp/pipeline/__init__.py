"""`tsdtp reproduce`: pipeline.yaml's spec, the plan of steps and what it prints while it runs, papermill execution
with staging (the reports' data/ included), the manifest and the gallery of `reports/`.
"""
