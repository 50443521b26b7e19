"""sparkfs: a feature store for teams that engineer features with Spark.

Public names only; importing this package does not import pyspark or start a JVM.

>>> import subprocess, sys
>>> subprocess.run([sys.executable, "-c", "import sys, sparkfs; print('pyspark' in sys.modules)"],
...                capture_output=True, text=True).stdout.strip()
'False'

The result types a user holds come from here too, whichever module makes them:

>>> from sparkfs import FeatureStore, IngestResult, MaterializeResult, TrainingSet
>>> FeatureStore.materialize.__annotations__["return"]
'list[MaterializeResult]'
"""

from .config import Config, load_config
from .definitions import Aggregation, Entity, FeatureGroup, FeatureRef, FeatureView, Field
from .errors import (
    BatchTooLargeError,
    ClusterError,
    CodeNotLoadedError,
    ConfigError,
    DefinitionError,
    JvmArtifactError,
    KafkaError,
    MissingExtraError,
    NotFoundError,
    OnlineStoreError,
    RegistryError,
    SparkfsError,
    TransformError,
    ValidationError,
)
from .monitoring.drift import DriftReport
from .monitoring.stats import Statistics
from .offline.history import History
from .offline.ingest import IngestResult
from .online.materialize import MaterializeResult
from .online.response import OnlineResponse
from .registry import ApplyResult
from .store import FeatureStore
from .training.result import TrainingSet
from .transforms import transform
from .validation.reports import ValidationReport

__version__ = "0.1.0"

__all__ = [
    # definitions, the facade, config
    "Aggregation", "Config", "Entity", "FeatureGroup", "FeatureRef", "FeatureStore",
    "FeatureView", "Field", "load_config", "transform",
    # results users hold
    "ApplyResult", "DriftReport", "History", "IngestResult", "MaterializeResult",
    "OnlineResponse", "Statistics", "TrainingSet", "ValidationReport",
    # errors (all under SparkfsError)
    "BatchTooLargeError", "ClusterError", "CodeNotLoadedError", "ConfigError",
    "DefinitionError", "JvmArtifactError", "KafkaError", "MissingExtraError", "NotFoundError",
    "OnlineStoreError", "RegistryError", "SparkfsError", "TransformError", "ValidationError",
]
