"""cosign-compatible signing formats: keys, simple-signing signatures, DSSE attestations, OCI manifests.

Pure functions over bytes (and key files); moving the bytes to and from a registry is someone else's job.
"""
