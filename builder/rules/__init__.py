"""Pure rules: CUDA architectures, platforms and wheel tags, which recipe can serve which cell."""
