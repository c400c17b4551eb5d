"""Rendering a plan into files: Dockerfile, docker-bake.json, compose.yaml, pixi.toml, context."""
