"""Model backends: everything the run engine needs to get a completion out of a model.

base.py           the interface (`ModelBackend`, `ModelRouter`, the `ModelEvent` stream)
openai_compat.py  any OpenAI-compatible `/chat/completions` endpoint (wire format: openai_wire.py)
llama_cpp.py      a GGUF model in-process via llama.cpp (prompt and grammars: llama_prompt.py)
scripted.py       a deterministic backend for tests
router.py         `build_model_router(settings)`: requested model name -> backend
fake_upstream.py  a small real OpenAI-compatible server for tests and benchmarks
"""
