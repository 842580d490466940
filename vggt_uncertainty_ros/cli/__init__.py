"""Command-line front ends: argument parsing only, the work happens in the library."""
