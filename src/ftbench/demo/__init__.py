"""The offline demo world: generated data and the build of the shipped world."""
