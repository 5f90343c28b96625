"""Training: E0s, replay data, one mace_run_train run and its record."""
