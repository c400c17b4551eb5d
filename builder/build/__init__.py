"""Building for real: engines behind one Protocol, the build runner and the wheel cache."""
