"""Run bookkeeping: atomic file IO, the resumable training loop, the run cache (hash, adopt, ensure-trained),
the run kinds the task packages register, evaluation file names, and the tables every result lands in; the
process group of a torchrun launch (distributed), a global batch split over its ranks (data_parallel) and
training through a launcher (launch).
"""
