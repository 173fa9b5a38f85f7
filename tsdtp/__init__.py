"""tsdtp: task-specific dynamic token pruning with real token removal, measured.

`tsdtp.load_run(path)` loads a trained classification run; its `.predict(texts)` labels one's own text and
shows the tokens kept at each layer (`tsdtp.classification.predict`). This module sits above every folder
of the package, so no module inside the package imports it. Importing it registers both task packages' runs
with the run cache, so `tsdtp.runs.cache.read_run_config` reads any run directory.
"""

from tsdtp import translation  # noqa: F401  (importing the task packages registers their runs, tsdtp.runs.kinds)
from tsdtp.classification.predict import Predictor, load_run
from tsdtp.classification.prediction import Prediction

__version__ = "0.1.0"

__all__ = ["Prediction", "Predictor", "__version__", "load_run"]
