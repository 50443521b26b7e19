"""Models in MLflow's registry, bound to the features they were trained on.

``fs.log_model(model, name, training_set=...)`` saves ``model`` with its MLflow flavour
(sklearn is detected; pass ``flavor=mlflow.xgboost`` etc. for others, or an
``mlflow.pyfunc.PythonModel``), logs it as the artifacts of an MLflow run and registers
it as a new version of registered model ``name``. The version's tags record:

``sparkfs.training_set``   the training set, ``name@version``
``sparkfs.view``           the feature view it was built from, ``name@version`` (or empty)
``sparkfs.binding``        references, options and the input columns (JSON)
``sparkfs.manifest``       Delta version per group, transform fingerprints, spine hash (JSON)

and the model's signature is built from the view's columns (names, order, dtypes).
Nothing here writes a registry of its own: MLflow's client, signatures and pyfunc loading
do that work. The embedded default is a local MLflow store under the data dir
(``sqlite:///{data_dir}/mlflow.db``); the ``models`` config section points a cluster at an
MLflow server. mlflow is imported only when a model is logged or loaded.

>>> from sparkfs.models import TAG_TRAINING_SET, TAG_VIEW
>>> TAG_TRAINING_SET, TAG_VIEW
('sparkfs.training_set', 'sparkfs.view')
"""

from .binding import FeatureBinding
from .mlflow_store import (
                           TAG_BINDING,
                           TAG_MANIFEST,
                           TAG_TRAINING_SET,
                           TAG_VIEW,
                           ModelRegistry,
                           ModelVersionInfo,
)

__all__ = ["FeatureBinding", "ModelRegistry", "ModelVersionInfo", "TAG_BINDING", "TAG_MANIFEST",
           "TAG_TRAINING_SET", "TAG_VIEW"]
