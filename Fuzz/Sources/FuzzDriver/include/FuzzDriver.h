// Intentionally empty: the target only provides vmfuzz_main (see FuzzDriver.c).
