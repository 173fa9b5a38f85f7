"""English-to-German translation (`wmt16` task) with TS-DTP pruning in the encoder.

Modules: `data` (corpora), `tokenizer` (sentencepiece, saved as a MarianTokenizer),
`encoding` (token-budget batches), `config` (`MTConfig`), `model` (`PrunedTranslator`),
`checkpoint` (run directories), `train` (`train_translation`), `evaluate` (translate, score,
FLOPs, generation speed), `runs` (`evaluate_translation`, results rows) and `cli`
(`add_translation_commands`, `run_translation_command`).
"""
