"""English-to-German translation (`wmt16` task) with TS-DTP pruning in the encoder.

Modules: `data` (corpora), `tokenizer` (sentencepiece, saved as a MarianTokenizer),
`encoding` (token-budget batches), `config` (`MTConfig`), `model` (`PrunedTranslator`),
`checkpoint` (run directories), `train` (`train_translation`), `evaluate` (translate, score,
FLOPs, generation speed), `report` (`evaluate_translation`, results rows) and `experiments`
(the pipeline's config builder and evaluations). Importing the package registers its runs with
the run cache (`tsdtp.runs.kinds`).
"""

from tsdtp.runs.kinds import RunKind, register_run_kind
from tsdtp.translation import config, train

register_run_kind(RunKind(config.MTConfig, (config.MTConfig.task,), train.train_translation, train.run_complete,
                          train.training_data))
