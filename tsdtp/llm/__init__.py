"""Decoder-only language models (Llama architecture): classification and long-prompt prefill pruning."""
