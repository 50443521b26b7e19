"""sparkfs: a feature store for teams that engineer features with Spark.

Public names only; importing this package does not import pyspark or start a JVM.

>>> import subprocess, sys
>>> subprocess.run([sys.executable, "-c", "import sys, sparkfs; print('pyspark' in sys.modules)"],
...                capture_output=True, text=True).stdout.strip()
'False'
"""

from .config import Config, load_config
from .definitions import Aggregation, Entity, FeatureGroup, FeatureRef, FeatureView, Field
from .errors import (
    ConfigError,
    DefinitionError,
    NotFoundError,
    OnlineStoreError,
    RegistryError,
    SparkfsError,
    TransformError,
    ValidationError,
)
from .store import FeatureStore
from .transforms import transform

__version__ = "0.1.0"

__all__ = [
    "Aggregation", "Config", "ConfigError", "DefinitionError", "Entity", "FeatureGroup",
    "FeatureRef", "FeatureStore", "FeatureView", "Field", "NotFoundError", "OnlineStoreError",
    "RegistryError", "SparkfsError", "TransformError", "ValidationError", "load_config",
    "transform",
]
