"""Serving: online feature vectors in-process (``sparkfs.serving.online``). Light on
purpose: nothing here imports pyspark or starts a JVM.

>>> import sys, sparkfs.serving.online
>>> "pyspark" in sys.modules
False
"""
