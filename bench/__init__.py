"""LUMA-RAG benchmark: the engine against bare FAISS, LangChain, LlamaIndex and exact numpy.

Run it with ``python -m bench.run --sizes 10000 100000`` (or ``make bench``); see
``bench/README.md`` for what each column means.
"""
