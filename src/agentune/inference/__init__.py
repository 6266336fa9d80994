"""Generation shared by `evaluate` and `agentune.serve`: prompts encoded exactly as xtuner encoded the
training samples (`generation`), and batched greedy decoding with a KV cache (`decoding`).

This package imports nothing itself: import the module you need.
"""
