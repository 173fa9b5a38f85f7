"""Run bookkeeping: atomic file IO, the resumable training loop, the run cache (hash, adopt, ensure-trained),
the run kinds the task packages register, evaluation file names, and the tables every result lands in.
"""
