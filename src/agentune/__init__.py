"""agentune: fine-tune an open LLM into a tool-calling agent, as a reproducible DVC pipeline.

Layout: one package per pipeline stage (`agentune.<stage>`: its `Config` and `run`), the shared
packages they build on (`core`, `protocol`, `inference`), and the commands (`cli`, `serve`).
"""

__version__ = "0.1.0"

#: The pipeline's stages, in the order `dvc.yaml` defines them. Each name is also the package
#: `agentune.<name>`, the `params.yaml` section and the `agentune <name>` subcommand.
STAGES = ("base_model", "raw_data", "convert", "train", "export", "gguf", "evaluate")
