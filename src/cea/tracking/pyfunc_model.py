"""The loader of a registered cea model (MLflow "models from code": this file, not a pickle).

MLflow copies this file into the logged model and runs it when the model is loaded; its sha256
is recorded as a model-version tag (`cea.loader_sha256`) and checked by `cea` before it uses a
registered model. The weights stay safetensors; `load_context` verifies the model folder
(manifest + artifact scan) before anything in it is read.

Input: a DataFrame (or list of strings) with a `text` column. Output: a DataFrame with one
probability column per criterion, in the run's label order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflow.models import set_model
from mlflow.pyfunc.model import PythonModel


class CeaCriteriaModel(PythonModel):
    def load_context(self, context: Any) -> None:
        from cea.run_folder import load_run_model

        self.lm = load_run_model(Path(context.artifacts["run"]))

    # no type hints here: MLflow would read them as the input schema (the signature is explicit)
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        import pandas as pd

        from cea.evaluate.predictor import post_probabilities

        if isinstance(model_input, pd.DataFrame):
            texts = [str(t) for t in model_input["text"].tolist()]
        else:
            texts = [str(t) for t in model_input]
        probs, _ = post_probabilities(self.lm, texts)  # a sentence model: pooled per post
        return pd.DataFrame(probs, columns=list(self.lm.labels))


set_model(CeaCriteriaModel())
