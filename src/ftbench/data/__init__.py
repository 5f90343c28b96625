"""Data in: pinned downloads, format conversion, splits, subsets and the checks of labelled frames."""
