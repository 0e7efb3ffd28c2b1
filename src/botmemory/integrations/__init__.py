"""Adapters that offer botmemory to other frameworks, each behind an extra.

- :mod:`botmemory.integrations.langgraph`: a LangGraph ``BaseStore``
  (``pip install 'botmemory[langgraph]'``).
"""
