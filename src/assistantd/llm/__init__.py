"""Model backends: everything the run engine needs to get a completion out of a model.

base.py           the interface (`ModelBackend`, `ModelRouter`, the `ModelEvent` stream)
openai_compat.py  any OpenAI-compatible `/chat/completions` endpoint (wire format: openai_wire.py)
llama_cpp.py      a GGUF model in-process via llama.cpp (prompt and grammars: llama_prompt.py)
router.py         `build_model_router(settings)`: requested model name -> backend

The test doubles (the scripted backend, a fake upstream server) are in `assistantd.testing`.
"""
