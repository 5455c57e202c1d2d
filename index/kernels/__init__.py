"""numba kernels on plain arrays (float32 data, int32 graph ids, uint8 codes)."""
