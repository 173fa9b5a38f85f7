"""Statistics of a comparison: paired bootstrap intervals, means over seeds, matched points. Pure functions,
no tsdtp imports, so measurement (`tsdtp.llm`) and analysis both use them.
"""
