"""Configuration, grid, strategies and the checks before training: no torch, cheap to import (the Snakefile parses with it)."""
