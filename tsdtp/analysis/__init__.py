"""From saved results to figures: tidy frames over results.csv and keep traces, token kinds, and the plots.
"""
