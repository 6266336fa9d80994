"""The tool protocol the models are trained, evaluated and served in, shared by every stage.

- `react`: the ReAct tool-calling text (system prompt with the tools, `Action:` / `Action Input:` calls,
  `Response:` results, `Final Answer:`), rendering and parsing.
- `templates`: the chat templates (ChatML, Llama-3) tied to xtuner's prompt templates of the same format.
- `tools`: a catalogue of real Python tools with JSON-schema specs, used by the sample data and the
  evaluation scenarios.

This package imports nothing itself: import the module you need.
"""
