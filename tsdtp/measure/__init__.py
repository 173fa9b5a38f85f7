"""Measuring methods side by side: devices and dtypes, peak memory, method specs, the shared measuring session,
the efficiency benchmark (`tsdtp bench`) and the time breakdown (`tsdtp profile`).
"""
