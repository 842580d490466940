"""Benchmarks (library parts of ``vggt-uncertainty bench``)."""
