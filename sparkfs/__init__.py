"""sparkfs: a feature store for teams that engineer features with Spark.

Public names only; importing this package does not import pyspark or start a JVM.

>>> import sys, sparkfs
>>> "pyspark" in sys.modules
False
"""

from .config import Config, load_config
from .definitions import Aggregation, Entity, FeatureGroup, FeatureRef, Field
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
    "FeatureRef", "FeatureStore", "Field", "NotFoundError", "OnlineStoreError",
    "RegistryError", "SparkfsError", "TransformError", "ValidationError", "load_config",
    "transform",
]
