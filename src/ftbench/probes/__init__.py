"""Probes of a model: test and pretraining errors, MD stability, RDF/EMD, RSS, dimer curves."""
