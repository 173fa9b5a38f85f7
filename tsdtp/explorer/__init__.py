"""The ipywidgets explorer behind `notebooks/00_explore.ipynb`: a session that loads runs and prunes one text,
and the widget around it.
"""
