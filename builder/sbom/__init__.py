"""SBOMs: syft's SPDX 2.3 and CycloneDX 1.6 documents of an image, joined with its lock.

`image` (what IMAGE names), `syft` (running the scanner offline), `contents` (the lock's view),
`join` and `normalize` and `completeness` (pure), `policy` (the site's `sbom/` folder), `make`
(`make_sboms`, the IO edge that `build sbom` and `build stack` call).
"""
