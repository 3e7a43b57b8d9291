"""Task modules: the library under each command line (train, evaluate, predict,
load), typed entry points that a notebook, the tuner, the GAN's quality metric and
the benchmarks call. A command line parses its flags, calls one task function and
prints; nothing here reads an argparse Namespace."""
