"""Data: the synthetic world, readers of the MLLMU-Bench layout and the one record schema."""
