"""The shared core every stage builds on: typed config loading, errors, atomic file output, the artifact
contract between stages (provenance records, checkpoints, dvc.lock), and pinned-wheel fetching.

Import the module you need (`from agentune.core.io import atomic_dir`): this package imports nothing
itself, so a stage's code lineage in `dvc.yaml` lists exactly the core modules it uses.
"""
