"""Serving: online feature vectors in-process (``sparkfs.serving.online``). Light on
purpose: nothing here imports pyspark or starts a JVM.

>>> import subprocess, sys
>>> code = "import sys, sparkfs.serving.online; print('pyspark' in sys.modules)"
>>> subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
'False'
"""
