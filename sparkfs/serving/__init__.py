"""Serving: online feature vectors in-process (``sparkfs.serving.online``). Light on
purpose: nothing here imports pyspark or starts a JVM.

>>> import subprocess, sys
>>> subprocess.run([sys.executable, "-c", "import sys, sparkfs.serving.online; print('pyspark' in sys.modules)"],
...                capture_output=True, text=True).stdout.strip()
'False'
"""
